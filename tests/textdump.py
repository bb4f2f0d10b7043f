"""The screen as plain text: for tests and the tmux-free checks of what an operator would read (a test helper,
not shipped in the wheel: it reads Textual's private compositor)."""

from __future__ import annotations

from textual.app import App


def screen_text(app: App) -> str:
    strips = app.screen._compositor.render_strips()  # Textual has no public plain-text export
    return "\n".join(strip.text.rstrip() for strip in strips)
