"""The WAL feeder: WAL from an S3 prefix, downloaded by a thread of the drtui process into a private staged
folder while the base backup is extracted and while PostgreSQL replays, so that the restored server never
holds credentials nor talks to the bucket (it could not write to it if it tried).

One listing of the prefix decides what is fed: every .history and .backup file, and the segments of the
backup's timeline and later ones from the backup's start (up to the target's segment for an LSN or
'immediate' target). The list is written first, as `FEED_LIST` (the feeder's pid on its first line), then
the files are downloaded, IN_FLIGHT at a time but handed over in order, each verified (the size the listing
gave, an inflated `.gz` object's segment size) and renamed into place whole. fetch_wal.sh waits for a listed
file that is not there yet, exits 1 at once for one the listing does not hold (the store said there is no
such object: the end of the WAL), and exits 170 (recovery stops) once the feeder wrote `FEED_FAILED`: a 5xx or
a timeout that outlived the retries never ends the WAL early. `FEED_DONE` says that all was delivered.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from drtui.core.errors import DrError
from drtui.core.extract import STAGED_MARKER
from drtui.core.inventory.names import parse_wal_name
from drtui.core.inventory.remote import IN_FLIGHT, Listed, download, list_prefix, wal_name
from drtui.core.models import BaseBackup
from drtui.core.objectstore import S3Settings, S3Url
from drtui.core.postgres import chown_to

FEED_LIST = ".drtui-feed"  # as in fetch_wal.sh
FEED_DONE = ".drtui-feed-done"
FEED_FAILED = ".drtui-feed-failed"

Progress = Callable[[int, int | None], None]


def feed_names(folder: Path) -> list[str]:
    """The WAL files a feeder delivers (or delivered) into `folder`; [] for a folder no feeder fills."""
    try:
        return (folder / FEED_LIST).read_text().splitlines()[1:]
    except OSError:
        return []


def choose(listing: list[Listed], backup: BaseBackup, last_segno: int | None) -> list[Listed]:
    """What a restore of `backup` needs from a WAL listing, in the order recovery asks for it."""
    size = backup.segment_size
    first = backup.start_lsn // size
    small, segments = [], []
    for obj in listing:
        parsed = parse_wal_name(wal_name(obj.url.name)[0], size)
        if parsed.kind in ("history", "backup"):
            small.append(obj)
        elif (parsed.kind == "segment" and parsed.timeline >= backup.timeline and parsed.segno >= first
              and (last_segno is None or parsed.segno <= last_segno)):
            segments.append(((parsed.segno, parsed.timeline), obj))
    segments.sort(key=lambda pair: pair[0])
    return small + [obj for _, obj in segments]


class WalFeeder:
    """Feeds `dest` from `prefix`; `start()` runs it in a thread, `stop()` cancels and waits for it."""

    def __init__(self, prefix: S3Url, settings: S3Settings, backup: BaseBackup, dest: Path, os_user: str,
                 last_segno: int | None = None, progress: Progress | None = None) -> None:
        self.prefix, self.settings, self.backup = prefix.as_prefix(), settings, backup
        self.dest, self.os_user, self.last_segno = dest, os_user, last_segno
        self.progress = progress or (lambda done, total: None)
        self.cancel = threading.Event()
        self.error: BaseException | None = None
        self.delivered = 0
        self._thread = threading.Thread(target=self._run, name="wal-feeder", daemon=True)

    def start(self) -> WalFeeder:
        self.dest.mkdir(mode=0o700)
        chown_to(self.dest, self.os_user)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.cancel.set()
        self.join()

    def join(self, timeout: float | None = None) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _write(self, name: str, text: str) -> None:
        tmp = self.dest / f".{name}.tmp"
        tmp.write_text(text)
        chown_to(tmp, self.os_user)
        os.replace(tmp, self.dest / name)

    def _run(self) -> None:
        try:
            listing = list_prefix(self.prefix, self.settings, "list the WAL to restore")
            wanted = choose(listing, self.backup, self.last_segno)
            self._write(STAGED_MARKER, f"WAL fed by drtui from {self.prefix}\n")
            self._write(FEED_LIST, "\n".join([str(os.getpid()), *(wal_name(o.url.name)[0] for o in wanted)]) + "\n")
            self._deliver(wanted)
            self._write(FEED_DONE, f"{self.delivered} file(s) delivered from {self.prefix}\n")
        except BaseException as exc:
            self.error = exc
            if not self.cancel.is_set() and self.dest.is_dir():
                why = exc.title if isinstance(exc, DrError) else f"{type(exc).__name__}: {exc}"
                with contextlib.suppress(OSError):
                    self._write(FEED_FAILED, f"could not be fetched from the bucket: {why}\n")

    def _deliver(self, wanted: list[Listed]) -> None:
        total = sum(obj.size for obj in wanted)
        done = 0
        todo = iter(wanted)
        with ThreadPoolExecutor(IN_FLIGHT, thread_name_prefix="wal-fetch") as pool:
            pending: deque[tuple[Listed, Future[Path]]] = deque()

            def submit() -> None:
                obj = next(todo, None)
                if obj is not None and not self.cancel.is_set():
                    pending.append((obj, pool.submit(self._fetch, obj)))

            for _ in range(IN_FLIGHT * 2):
                submit()
            try:
                while pending:
                    obj, future = pending.popleft()
                    staged = future.result()
                    os.replace(staged, self.dest / wal_name(obj.url.name)[0])  # in order: recovery's order
                    self.delivered += 1
                    done += obj.size
                    self.progress(done, total)
                    submit()
            except BaseException:
                self.cancel.set()  # the downloads still in flight stop
                for _, future in pending:
                    future.cancel()
                raise
            if self.delivered < len(wanted):
                raise DrError("the WAL feeder was cancelled")

    def _fetch(self, obj: Listed) -> Path:
        """Download one WAL file beside its place (`.<name>.part`), verified and owned by os_user."""
        name, compression = wal_name(obj.url.name)
        part = self.dest / f".{name}.part"
        download(obj, self.settings, part, self.cancel)
        if compression and parse_wal_name(name, self.backup.segment_size).kind == "segment":
            written = part.stat().st_size
            if written != self.backup.segment_size:
                part.unlink()
                raise DrError(f"{obj.url}: inflates to {written} bytes, a WAL segment has "
                              f"{self.backup.segment_size}", "the WAL object is damaged")
        part.chmod(0o600)
        chown_to(part, self.os_user)
        return part


def wait_until_done(feeder: WalFeeder, cancel: threading.Event, poll: float = 0.2) -> None:
    """Wait for the feeder to deliver everything (a paused restore keeps all WAL for `restore advance`)."""
    while feeder.running:
        if cancel.is_set():
            feeder.stop()
        feeder.join(poll)
    if feeder.error is not None:
        raise feeder.error
