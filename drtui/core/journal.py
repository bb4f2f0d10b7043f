"""The run journal: one append-only JSON-lines file per run, in `<state_dir>/runs/<run_id>.jsonl`.

The runner appends every event and flushes it at once; the TUI, `drtui attach` and the reports read it back.
Re-attaching to a run is nothing more than reading its journal again and following it.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

from drtui.core.events import Event, RunFinished, from_json
from drtui.core.secrets import redact_data


def runs_dir(state_dir: Path) -> Path:
    return state_dir / "runs"


def journal_path(state_dir: Path, run_id: str) -> Path:
    return runs_dir(state_dir) / f"{run_id}.jsonl"


class Journal:
    """Appends events, one JSON line each, flushed; every string in an event is masked before it is
    serialized, so a line is always valid JSON."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def append(self, event: Event) -> None:
        line = json.dumps(redact_data(json.loads(event.to_json()))) + "\n"
        with self._lock:
            self._handle.write(line)
            self._handle.flush()

    def close(self) -> None:
        with self._lock:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()


def _event(line: str, number: int, path: Path, damage: list[str] | None) -> Event | None:
    """One journal line as an event; a damaged line (not JSON, not an event) is noted in `damage` and skipped."""
    try:
        return from_json(line)
    except (ValueError, KeyError, TypeError, AttributeError):
        if damage is not None:
            shown = line.strip()
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            damage.append(f"{path}: line {number} is damaged, not a journal event ({shown!r}): skipped")
        return None


def read_events(path: Path, damage: list[str] | None = None, finished: bool = False) -> list[Event]:
    """Every complete event in a journal. A half-written last line is left for the next read, unless the run
    is `finished` (its process is gone): then the file was cut off, which is damage. Damaged lines are
    skipped and described in `damage`."""
    events = []
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.endswith("\n"):
                if finished and damage is not None:
                    damage.append(f"{path}: line {number} is incomplete (the file ends in the middle of a line): "
                                  "the journal is truncated or damaged")
                break
            event = _event(line, number, path, damage)
            if event is not None:
                events.append(event)
    return events


def journal_damage(path: Path) -> list[str]:
    """What is wrong with the journal of a run that is over: its damaged lines, and a cut-off end."""
    damage: list[str] = []
    read_events(path, damage, finished=True)
    return damage


def _lines(handle: TextIO, stop: threading.Event, poll: float,
           wait: Callable[[float], object]) -> Iterator[tuple[int, str] | None]:
    """Complete lines of a journal being written, numbered; None whenever the reader has caught up."""
    pending = ""
    number = 0
    while not stop.is_set():
        chunk = handle.readline()
        if not chunk:
            yield None
            wait(poll)
            continue
        pending += chunk
        if pending.endswith("\n"):
            number += 1
            yield number, pending
            pending = ""


def follow(path: Path, stop: threading.Event, poll: float = 0.05, damage: list[str] | None = None) -> Iterator[Event]:
    """Yield the journal's events from the start, then new ones as they are appended, until the run
    finishes or `stop` is set (damaged lines are skipped and described in `damage`)."""
    while not path.exists():
        if stop.wait(poll):
            return
    with path.open(encoding="utf-8", errors="replace") as handle:
        for item in _lines(handle, stop, poll, time.sleep):
            if item is None:
                continue
            event = _event(item[1], item[0], path, damage)
            if event is None:
                continue
            yield event
            if isinstance(event, RunFinished):
                return


def list_runs(state_dir: Path) -> list[Path]:
    """Journals, newest first."""
    folder = runs_dir(state_dir)
    return sorted(folder.glob("*.jsonl"), key=lambda p: p.stat().st_mtime, reverse=True) if folder.exists() else []


def follow_batches(path: Path, stop: threading.Event, poll: float = 0.05, max_batch: int = 2000,
                   damage: list[str] | None = None) -> Iterator[list[Event]]:
    """Like `follow`, but yield every event already written as one list each time the reader catches up,
    so a face can apply thousands of log lines per second in a few screen updates."""
    while not path.exists():
        if stop.wait(poll):
            return
    with path.open(encoding="utf-8", errors="replace") as handle:
        batch: list[Event] = []
        for item in _lines(handle, stop, poll, stop.wait):
            event = _event(item[1], item[0], path, damage) if item else None
            if event is not None:
                batch.append(event)
                if isinstance(event, RunFinished):
                    yield batch
                    return
            if batch and (item is None or len(batch) >= max_batch):
                yield batch
                batch = []
