"""Damaged WAL coverage and a restored server that cannot start: the inventory and the plan never count a
wrong-size or unreadable segment as coverage, XID and restore-point targets are refused past a gap, the disk
check counts the WAL the restore copies, and a server that exits at once (a port in use) is reported at once,
with the bind error whole and a hint that says the old data is back."""

from __future__ import annotations

import io
import json
import os
import socket
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from drtui.core.inventory.wal import find_gaps
from drtui.core.models import Gap
from drtui.sandbox import Sandbox
from tests.faults.conftest import FaultWorld, assert_message, leftovers, make_fault_world

SEGMENT = 16 * 1024 * 1024


def archive_segments(world: FaultWorld) -> list[str]:
    return sorted(p.name for p in world.sandbox.wal_archive.iterdir() if len(p.name) == 24)


def short_reason(name: str) -> str:
    return f"{name}: 200 bytes, a segment is 16 MiB"


def inventory_json(world: FaultWorld) -> dict:
    result = world.drtui("inventory", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_damaged_segments_are_gaps_wherever_they_lie() -> None:
    bad = {4: "4 is short"}
    assert find_gaps({1: [1, 2, 3, 6]}, damaged={1: bad}) == [Gap(1, 4, 5, damaged=("4 is short",))]
    assert find_gaps({1: [1, 2, 3]}, damaged={1: bad}) == [Gap(1, 4, 4, damaged=("4 is short",))]  # the last one
    assert find_gaps({1: [5, 6]}, damaged={1: bad}) == [Gap(1, 4, 4, damaged=("4 is short",))]  # the first one
    assert find_gaps({}, damaged={1: bad}) == [Gap(1, 4, 4, damaged=("4 is short",))]
    assert Gap(1, 4, 5, damaged=("4 is short",)).describe() == (
        "1 segment(s) of 000000010000000000000004 … 000000010000000000000005 missing; 4 is short")


def test_a_short_segment_is_a_gap_and_no_target_past_it_is_planned(fault_world: FaultWorld) -> None:
    world = fault_world
    name = archive_segments(world)[-1]  # the segment holding the rows written after the backup
    os.truncate(world.sandbox.wal_archive / name, 200)
    world.before()

    data = inventory_json(world)
    assert [(g["from"], g["damaged"]) for g in data["wal"]["gaps"]] == [(name, [short_reason(name)])]
    window = data["windows"][0]
    assert window["usable"] and window["last_segment"] < name and window["cut_by_gap"]["from"] == name
    text = world.drtui("inventory").stdout
    assert "1 gap(s)" in text and f"GAP on timeline 1: {short_reason(name)}" in text

    assert_message(world.restore_staging_pitr(), short_reason(name), "latest", "good copy", code=2)
    late = world.after_backup[-1].committed_at.isoformat()
    assert_message(world.restore_staging_pitr("--target-time", late), short_reason(name), "pick a time before the gap",
                   code=2)
    assert world.sentinel.present()
    world.unchanged()
    assert leftovers(world.sandbox) == []


@pytest.fixture(scope="module")
def unreadable_world() -> Iterator[tuple[FaultWorld, str]]:
    """A world whose archive holds a segment postgres cannot read (root's, mode 0600), with one more after it."""
    if os.geteuid() != 0:
        pytest.skip("needs root, to give a segment to another user than the server's")
    with Sandbox() as sandbox:
        world = make_fault_world(sandbox)
        world.after_backup.append(sandbox.insert("bookings"))
        sandbox.switch_wal()
        name = archive_segments(world)[-2]
        os.chown(sandbox.wal_archive / name, 0, 0)
        os.chmod(sandbox.wal_archive / name, 0o600)
        yield world, name


@pytest.fixture
def unreadable(unreadable_world) -> tuple[FaultWorld, str]:
    """The shared world, fingerprinted afresh: production's archive_timeout may have added a segment since."""
    unreadable_world[0].before()
    return unreadable_world


def test_an_unreadable_segment_is_a_gap_and_a_time_past_it_is_refused(unreadable) -> None:
    world, name = unreadable
    reason = f"{name}: unreadable by {world.sandbox.os_user} (mode 0600, owner uid 0)"
    gaps = inventory_json(world)["wal"]["gaps"]
    assert [(g["from"], g["to"], g["damaged"]) for g in gaps] == [(name, name, [reason])]

    late = world.after_backup[-1].committed_at.isoformat()
    assert_message(world.restore_staging_pitr("--target-time", late), reason, "chmod o+r", code=2)
    assert world.sentinel.present()
    world.unchanged()
    assert leftovers(world.sandbox) == []


@pytest.mark.parametrize("option", [("--target-xid", "99999"), ("--target-name", "before_migration")])
def test_xid_and_restore_point_targets_are_refused_when_the_wal_has_a_gap(unreadable, option) -> None:
    world, name = unreadable
    result = world.restore_staging_pitr(*option)
    assert_message(result, option[1], "cannot be checked against the WAL", name, "unreadable by", "--target-time",
                   code=2)
    assert world.sentinel.present()
    world.unchanged()
    assert leftovers(world.sandbox) == []


def test_the_disk_check_counts_the_wal_the_restore_copies_from_the_archive(unreadable) -> None:
    world, _name = unreadable
    result = world.restore_staging_pitr("--dry-run", "--json", "--recovery-target", "immediate")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)["plan"]
    bb = plan["base_backup"]
    first = bb["start_lsn"] // SEGMENT
    last = bb["stop_lsn"] // SEGMENT
    assert plan["required_bytes"] == bb["size_bytes"] + (last - first + 1) * SEGMENT
    world.unchanged()


def test_a_backup_of_another_major_version_is_refused_before_anything_is_touched(unreadable,
                                                                                 tmp_path: Path) -> None:
    world, _name = unreadable
    copy = tmp_path / world.base_backup.name
    with tarfile.open(world.base_backup, "r:gz") as src, tarfile.open(copy, "w:gz", compresslevel=1) as dst:
        for member in src:
            if member.name.lstrip("./") == "PG_VERSION":
                member.size = 3
                dst.addfile(member, io.BytesIO(b"14\n"))
            else:
                dst.addfile(member, src.extractfile(member) if member.isfile() else None)
    result = world.restore_staging_pitr("--recovery-target", "immediate", env={"BASE_BACKUP": str(copy)})
    assert_message(result, copy.name, "PostgreSQL 14", "PostgreSQL 15", "pg_bin", code=2)
    assert world.sentinel.present()
    world.unchanged()
    assert leftovers(world.sandbox) == []


class PortTaker:
    """Takes a TCP port the moment it is free (as another program would once the old server stops)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock: socket.socket | None = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._take, daemon=True)
        self.thread.start()

    def _take(self) -> None:
        while not self.stop.is_set():
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", self.port))
                sock.listen()
            except OSError:
                sock.close()
                time.sleep(0.001)
                continue
            self.sock = sock
            return

    def release(self) -> None:
        self.stop.set()
        self.thread.join()
        if self.sock:
            self.sock.close()


def test_a_port_in_use_fails_the_start_at_once_with_the_bind_error_and_says_the_data_is_back(
        fault_world: FaultWorld) -> None:
    world = fault_world
    sandbox = world.sandbox
    staging = sandbox.env("staging")
    config = sandbox.config_path.read_text()
    sandbox.config_path.write_text(config.replace(f'host = "{staging.host}"', 'host = "127.0.0.1"'))
    world.before()
    taker = PortTaker(staging.port)
    try:
        result = world.restore_staging_pitr("--json")
        assert taker.sock is not None, "the port was never taken"
    finally:
        taker.release()
    assert_message(result, 'could not bind IPv4 address "127.0.0.1": Address already in use',
                   f"port {staging.port} is taken by another program", "Nothing was lost",
                   "the old data directory is back in place", "nothing to roll back", code=1)
    assert "drtui rollback" not in result.output
    summary = json.loads(result.stdout)
    failed = [s for s in summary["steps"] if s["outcome"] == "failed"]
    assert [s["name"] for s in failed] == ["start_postgres"] and failed[0]["seconds"] < 5, failed
    # The old cluster is whole: once the port is free it starts and holds the sentinel.
    sandbox.server("staging").start()
    assert world.sentinel.present()
    world.unchanged()
    aside = [p for p in leftovers(sandbox) if ".failed_" in p]
    assert leftovers(sandbox) == aside and len(aside) == 1 and aside[0] in result.output
