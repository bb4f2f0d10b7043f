"""Messages the wizard's workers post: past-tense facts, never widget calls from a thread."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from textual.message import Message

from drtui.core.events import Event

if TYPE_CHECKING:
    from drtui.core.monitoring import EnvironmentStatus


@dataclass
class JournalRead(Message):
    """A batch of events read from a run's journal (log lines are never coalesced, so neither is this)."""

    journal: Path
    events: list[Event]
    bubble = False


@dataclass
class JournalFailed(Message):
    """The journal could not be followed (unreadable, corrupt line)."""

    journal: Path
    error: str
    bubble = False


@dataclass
class StatusRefreshed(Message):
    """Heartbeats and runs on this host, read again by the status worker."""

    rows: list[tuple[str, str, str, str, str]]
    summary: str = ""
    error: str | None = None
    recovery: list[str] | None = None
    status: EnvironmentStatus | None = None  # the Status screen's checks
    bubble = False

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, StatusRefreshed)
