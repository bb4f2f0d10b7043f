"""The fault layer's harness: a recoverable world per case, and fingerprints taken before and after a fault.

Every case in tests/faults/ asserts the same four things, with the helpers here:
- the exit code and a message that names the file, value or setting and says what to do (`assert_message`);
- the target environment's data is as it was, or preserved and restorable (`Sentinel`, in staging's database);
- every file of the WAL source and backup directory is unchanged (`tree_digest` before and after);
- nothing is left behind, or what must stay is named (`leftovers`).
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from drtui.core import backup
from drtui.core.clock import SystemClock
from drtui.core.postgres import connect
from drtui.sandbox import Insert, Sandbox
from tests.conftest import Result, run_drtui

SENTINEL_TABLE = "fault_sentinel"
SEGMENT = re.compile(r"^[0-9A-F]{24}$")


def tree_digest(folder: Path) -> dict[str, str]:
    """Every file under `folder` (relative path -> sha256 of its bytes, or 'unreadable'); {} when absent."""
    digest: dict[str, str] = {}
    if not folder.exists():
        return digest
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            path = Path(root, name)
            relative = str(path.relative_to(folder))
            try:
                digest[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError:
                digest[relative] = "unreadable"
    return digest


def assert_message(result: Result, *words: str, code: int) -> None:
    """The exit code is `code` and the output names every one of `words` (case-insensitive), no traceback."""
    text = result.output
    assert result.exit_code == code, f"exit {result.exit_code}, expected {code}:\n{text}"
    assert "Traceback (most recent call last)" not in text, text
    for word in words:
        assert word.lower() in text.lower(), f"{word!r} not in the output:\n{text}"


@dataclass
class Sentinel:
    """A row in a table of its own in one environment's database, proving that database's identity."""

    sandbox: Sandbox
    env: str
    value: str

    @classmethod
    def plant(cls, sandbox: Sandbox, env: str = "staging") -> Sentinel:
        value = f"sentinel-{env}-{time.time_ns()}"
        with connect(sandbox.env(env)) as conn:
            conn.execute(f"create table if not exists {SENTINEL_TABLE} (value text)")
            conn.execute(f"insert into {SENTINEL_TABLE} values (%s)", (value,))
        return cls(sandbox, env, value)

    def present(self) -> bool:
        """True when the environment's server answers and holds the row (False when it is down or lacks it)."""
        try:
            with connect(self.sandbox.env(self.env)) as conn:
                exists = conn.execute("select to_regclass(%s)", (SENTINEL_TABLE,)).fetchone()[0]
                if exists is None:
                    return False
                rows = conn.execute(f"select count(*) from {SENTINEL_TABLE} where value = %s",
                                    (self.value,)).fetchone()[0]
                return rows == 1
        except Exception:
            return False


def leftovers(sandbox: Sandbox, env: str = "staging") -> list[str]:
    """What a run may have left beside an environment's data directory or in the state folder: half-extracted
    copies, prefetch folders, locks, and temporary files (preserved `.pre_pitr_*` copies are not leftovers)."""
    data_dir = sandbox.env(env).data_dir
    found = [str(p) for p in data_dir.parent.iterdir()
             if p.name != data_dir.name and not p.name.startswith((f"{data_dir.name}.pre_pitr_", "uploads", ".env"))]
    state = sandbox.root / "ops" / "state" / "drtui"
    if state.exists():
        found += [str(p) for p in state.rglob("*") if p.name.endswith((".lock", ".tmp", ".partial"))]
    found += [str(p) for p in sandbox.backup_dir.rglob("*") if p.name.endswith((".tmp", ".partial"))]
    return sorted(found)


@dataclass
class FaultWorld:
    """A sandbox with something to recover: a dump, a base backup, rows after it, a WAL sync, and a sentinel
    in staging; `before()` fingerprints what a fault must not change, `unchanged()` compares."""

    sandbox: Sandbox
    base_backup: Path
    after_backup: list[Insert]
    sentinel: Sentinel
    fingerprints: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def config(self) -> Path:
        return self.sandbox.config_path

    def drtui(self, *args: str, env: dict[str, str] | None = None, timeout: float = 180) -> Result:
        return run_drtui(*args, config=self.config, env=env, timeout=timeout)

    def restore_staging_pitr(self, *args: str, env: dict[str, str] | None = None, timeout: float = 180) -> Result:
        return self.drtui("restore", "pitr", "--env", "staging", *args,
                          env={"CONFIRM_PITR_RESTORE": "YES", **(env or {})}, timeout=timeout)

    def sources(self) -> dict[str, Path]:
        return {"wal_archive": self.sandbox.wal_archive, "backup_dir": self.sandbox.backup_dir}

    def before(self) -> None:
        self.fingerprints = {name: tree_digest(path) for name, path in self.sources().items()}

    def unchanged(self) -> None:
        """The WAL source and the backup directory hold exactly the files they held at `before()`, but for the
        segments production itself archived since (archive_timeout is 60 s in the sandbox: a slow case sees one):
        whole segments of the newest timeline there was, after the newest segment there was."""
        for name, path in self.sources().items():
            now = tree_digest(path)
            was = self.fingerprints[name]
            if name == "wal_archive":
                now = {k: v for k, v in now.items() if k in was or not _archived_since(k, was)}
            assert now == was, (f"{name} changed: removed {sorted(set(was) - set(now))}, "
                                f"added {sorted(set(now) - set(was))}, "
                                f"modified {sorted(k for k in was.keys() & now.keys() if was[k] != now[k])}")


def _archived_since(name: str, was: dict[str, str]) -> bool:
    """Whether `name` is a segment production archived after the files `was` lists: its timeline, a later one."""
    segments = sorted(k for k in was if SEGMENT.match(k))
    return bool(SEGMENT.match(name) and segments and name[:8] == segments[-1][:8] and name > segments[-1])


def make_fault_world(sandbox: Sandbox, rows_after: int = 3) -> FaultWorld:
    config, prod, clock = sandbox.config(), sandbox.env("production"), SystemClock()
    backup.dump(config, prod, clock)
    base = backup.base(config, prod, clock).artifacts[0].path
    inserts = [sandbox.insert("bookings") for _ in range(rows_after)]
    sandbox.switch_wal()
    backup.wal_sync(config, clock)
    return FaultWorld(sandbox, base, inserts, Sentinel.plant(sandbox, "staging"))


@pytest.fixture
def fault_world() -> Iterator[FaultWorld]:
    """A world of the case's own: faults break things."""
    with Sandbox() as sandbox:
        world = make_fault_world(sandbox)
        world.before()
        yield world


@pytest.fixture(scope="module")
def shared_fault_world() -> Iterator[FaultWorld]:
    """One world for a module whose cases each leave it as they found it (a case that breaks it takes
    `fault_world`)."""
    with Sandbox() as sandbox:
        yield make_fault_world(sandbox)


@pytest.fixture
def fresh_world(shared_fault_world: FaultWorld) -> FaultWorld:
    """The shared world, fingerprinted at the case's start (production archives WAL meanwhile: archive_timeout)."""
    shared_fault_world.before()
    return shared_fault_world
