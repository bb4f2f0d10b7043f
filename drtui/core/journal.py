"""The run journal: one append-only JSON-lines file per run, in `<state_dir>/runs/<run_id>.jsonl`.

The runner appends every event and flushes it at once; the TUI, `drtui attach` and the reports read it back.
Re-attaching to a run is nothing more than reading its journal again and following it.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

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


def read_events(path: Path) -> list[Event]:
    """Every complete event in a journal (a half-written last line is left for the next read)."""
    with path.open(encoding="utf-8") as handle:
        return [from_json(line) for line in handle if line.endswith("\n")]


def follow(path: Path, stop: threading.Event, poll: float = 0.05) -> Iterator[Event]:
    """Yield the journal's events from the start, then new ones as they are appended, until the run
    finishes or `stop` is set."""
    while not path.exists():
        if stop.wait(poll):
            return
    with path.open(encoding="utf-8") as handle:
        pending = ""
        while not stop.is_set():
            chunk = handle.readline()
            if not chunk:
                time.sleep(poll)
                continue
            pending += chunk
            if not pending.endswith("\n"):
                continue
            event = from_json(pending)
            pending = ""
            yield event
            if isinstance(event, RunFinished):
                return


def list_runs(state_dir: Path) -> list[Path]:
    """Journals, newest first."""
    folder = runs_dir(state_dir)
    return sorted(folder.glob("*.jsonl"), key=lambda p: p.stat().st_mtime, reverse=True) if folder.exists() else []


def follow_batches(path: Path, stop: threading.Event, poll: float = 0.05,
                   max_batch: int = 2000) -> Iterator[list[Event]]:
    """Like `follow`, but yield every event already written as one list each time the reader catches up,
    so a face can apply thousands of log lines per second in a few screen updates."""
    while not path.exists():
        if stop.wait(poll):
            return
    with path.open(encoding="utf-8") as handle:
        pending = ""
        batch: list[Event] = []
        while not stop.is_set():
            chunk = handle.readline()
            if chunk:
                pending += chunk
                if not pending.endswith("\n"):
                    continue
                event = from_json(pending)
                pending = ""
                batch.append(event)
                if isinstance(event, RunFinished):
                    yield batch
                    return
                if len(batch) < max_batch:
                    continue
            if batch:
                yield batch
                batch = []
            elif not chunk:
                stop.wait(poll)
