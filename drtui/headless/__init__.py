"""The headless face: prints events and results, owns the exit codes. Never imports Textual."""
