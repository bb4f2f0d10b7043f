from __future__ import annotations

from textual.widgets import Checkbox


class OnOff(Checkbox):
    """A checkbox whose label ends with its state in words (`…: off`): its box reads as ticked in plain text or
    without colour whether it is on or not."""

    def __init__(self, text: str, value: bool = False, **kwargs: object) -> None:
        self.text = text
        super().__init__(self._words(value), value, **kwargs)  # type: ignore[arg-type]

    def _words(self, value: bool) -> str:
        return f"{self.text}: {'on' if value else 'off'}"

    def watch_value(self) -> None:
        super().watch_value()
        self.label = self._words(self.value)
