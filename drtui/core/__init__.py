"""The recovery engine: no Textual, no Rich, no humanize. Faces (tui, headless) consume it."""
