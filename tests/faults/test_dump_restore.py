"""Faults of the staging restore from a dump (issue 19 points 1-4 and 10): a dump is data, never a program;
every wait is bounded; a failed restore undoes itself; refusals exit 2 and say only what is true; safety
copies are aged out."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from drtui.core.dump_checks import DumpRefused, check_dump
from drtui.core.journal import read_events
from drtui.core.postgres import connect
from tests.conftest import Result
from tests.faults.conftest import FaultWorld, assert_message, leftovers, tree_digest

STAMP = "20260101T000000Z"


def _dump(world: FaultWorld) -> Path:
    return next(world.sandbox.backup_dir.glob("cleaning_*.sql.gz"))


def _uploads(world: FaultWorld) -> Path:
    return next(world.sandbox.backup_dir.glob("uploads_*.tar.gz"))


def _forged(world: FaultWorld, sql: bytes, name: str = f"cleaning_{STAMP}.sql.gz") -> Path:
    """A dump outside backup_dir (which must stay unchanged) with the given SQL, beside the uploads archive of
    its stamp (a dump is a whole backup only with it)."""
    folder = world.sandbox.root / "forged"
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_bytes(gzip.compress(sql))
    _pair_with_uploads(world, path)
    return path


def _pair_with_uploads(world: FaultWorld, dump: Path) -> None:
    shutil.copyfile(_uploads(world), dump.with_name(f"uploads_{STAMP}.tar.gz"))


def _sql(world: FaultWorld) -> bytes:
    return gzip.decompress(_dump(world).read_bytes())


def _without_restrict(sql: bytes) -> bytes:
    """The dump as pg_dump before 15.14 wrote it: without its \\restrict and \\unrestrict lines."""
    return b"".join(line for line in sql.splitlines(keepends=True) if not line.startswith((b"\\restrict ",
                                                                                          b"\\unrestrict ")))


def _insert_after_first_copy(sql: bytes, line: bytes) -> bytes:
    """The dump with `line` after its first COPY block: half of the data is loaded when it runs."""
    end = sql.index(b"\n\\.\n") + len(b"\n\\.\n")
    return sql[:end] + line + b"\n" + sql[end:]


def _restore(world: FaultWorld, *args: str, env: dict[str, str] | None = None, timeout: float = 120) -> Result:
    return world.drtui("restore", "staging", *args, env={"TARGET_ENV": "staging", "CONFIRM_STAGING_RESTORE": "YES",
                                                          **(env or {})}, timeout=timeout)


def _staging_uploads(world: FaultWorld) -> Path:
    uploads = world.sandbox.env("staging").uploads_dir
    assert uploads is not None
    return uploads


def _safety_copies(world: FaultWorld) -> list[Path]:
    state = world.sandbox.root / "ops" / "state" / "drtui" / "pre_restore"
    uploads = _staging_uploads(world)
    return sorted([*state.glob("*"), *uploads.parent.glob(f"{uploads.name}.*")])


def _assert_untouched(world: FaultWorld, uploads_before: dict[str, str]) -> None:
    assert world.sentinel.present()
    assert tree_digest(_staging_uploads(world)) == uploads_before
    world.unchanged()
    assert leftovers(world.sandbox) == []
    assert _safety_copies(world) == []


def _plant_upload(world: FaultWorld) -> dict[str, str]:
    (_staging_uploads(world) / "staging_only.txt").write_text("staging's own upload")
    return tree_digest(_staging_uploads(world))


# -- 1. a dump is data, never a program -----------------------------------------------------------------

@pytest.mark.parametrize("forge", [
    lambda sql, line: sql.replace(b"\n\\restrict ", b"\n" + line + b"\n\\restrict ", 1),
    lambda sql, line: _insert_after_first_copy(_without_restrict(sql), line),
], ids=["before_its_restrict_line", "in_a_dump_without_restrict"])
def test_a_dump_carrying_a_shell_command_is_refused_with_nothing_run(fresh_world: FaultWorld, forge) -> None:
    world = fresh_world
    uploads = _plant_upload(world)
    pwned = world.sandbox.root / "pwned.txt"
    forged = _forged(world, forge(_sql(world), f"\\! id > {pwned}".encode()))
    result = _restore(world, env={"BACKUP_FILE": str(forged), "UPLOADS_ARCHIVE": str(_uploads(world))})
    assert_message(result, str(forged), "line", "\\! id", "never writes", "do not restore this file", code=2)
    assert not pwned.exists()
    assert "no database to save" not in result.output
    _assert_untouched(world, uploads)


@pytest.mark.parametrize("line", [b"\\unrestrict {key}", b"select 1; \\unrestrict {key} \\! id"],
                         ids=["own_line", "mid_line_then_shell"])
def test_a_dump_leaving_psql_restricted_mode_early_is_refused(fresh_world: FaultWorld, line: bytes) -> None:
    world = fresh_world
    uploads = _plant_upload(world)
    sql = _sql(world)
    key = sql.split(b"\\restrict ", 1)[1].split(b"\n", 1)[0]
    forged = _forged(world, _insert_after_first_copy(sql, line.replace(b"{key}", key)))
    result = _restore(world, env={"BACKUP_FILE": str(forged)})
    assert_message(result, str(forged), "line", "a dump is data, never a program", code=2)
    _assert_untouched(world, uploads)


def test_a_dump_of_another_database_is_refused_unless_named(fresh_world: FaultWorld) -> None:
    world = fresh_world
    uploads = _plant_upload(world)
    other = _forged(world, _sql(world), name=f"otherdb_{STAMP}.sql.gz")
    result = _restore(world, env={"BACKUP_FILE": str(other)})
    assert_message(result, str(other), "'otherdb'", "'cleaning'", "--source-database otherdb", code=2)
    _assert_untouched(world, uploads)


def test_a_create_database_dump_is_refused(fresh_world: FaultWorld) -> None:
    world = fresh_world
    uploads = _plant_upload(world)
    staging = world.sandbox.env("staging")
    created = subprocess.run([str(staging.pg_bin / "pg_dump"), "-C", "-h", "127.0.0.1", "-p",
                              str(world.sandbox.env("production").port), "-U", "postgres", "-d", "cleaning"],
                             capture_output=True, check=True,
                             env={"PGPASSWORD": world.sandbox.env("production").password() or ""})
    forged = _forged(world, created.stdout)
    result = _restore(world, env={"BACKUP_FILE": str(forged)})
    assert_message(result, str(forged), "a whole database", "CREATE DATABASE", "without -C", code=2)
    _assert_untouched(world, uploads)


# -- 4. refusals before anything is touched exit 2, and say only what happened ----------------------------

@pytest.mark.parametrize("fault, words", [
    ("truncated", ("truncated",)), ("not gzip", ("not a readable gzip file",)),
    ("empty", ("incomplete",)), ("no completion line", ("incomplete", "pg_dump did not finish"))])
def test_a_broken_dump_is_refused_with_exit_2(fresh_world: FaultWorld, fault: str, words: tuple[str, ...]) -> None:
    world = fresh_world
    uploads = _plant_upload(world)
    whole = _dump(world).read_bytes()
    forged = _forged(world, b"")
    forged.write_bytes({"truncated": whole[: len(whole) // 2], "not gzip": b"-- plain text, not gzip\n" * 10,
                        "empty": gzip.compress(b""),
                        "no completion line": gzip.compress(_sql(world)[: len(_sql(world)) // 2])}[fault])
    result = _restore(world, env={"BACKUP_FILE": str(forged)})
    assert_message(result, str(forged), *words, code=2)
    assert "no database to save" not in result.output.lower()
    _assert_untouched(world, uploads)


def _archive(world: FaultWorld, name: str, add) -> Path:
    path = world.sandbox.root / "forged" / name
    path.parent.mkdir(exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        tar.add(world.sandbox.env("production").uploads_dir, arcname="uploads")
        add(tar)
    return path


def _traversal(tar: tarfile.TarFile) -> None:
    member = tarfile.TarInfo("uploads/../../evil.txt")
    member.size = 4
    tar.addfile(member, io.BytesIO(b"evil"))


def _symlink(tar: tarfile.TarFile) -> None:
    member = tarfile.TarInfo("uploads/passwd")
    member.type, member.linkname = tarfile.SYMTYPE, "/etc/passwd"
    tar.addfile(member)


@pytest.mark.parametrize("name, add, member", [("traversal", _traversal, "uploads/../../evil.txt"),
                                               ("symlink", _symlink, "uploads/passwd")])
def test_a_bad_uploads_member_is_refused_before_the_database_is_touched(fresh_world: FaultWorld, name: str,
                                                                          add, member: str) -> None:
    world = fresh_world
    uploads = _plant_upload(world)
    archive = _archive(world, f"uploads_{name}.tar.gz", add)
    result = _restore(world, env={"BACKUP_FILE": str(_dump(world)), "UPLOADS_ARCHIVE": str(archive)})
    assert_message(result, str(archive), repr(member), "only files and folders", code=2)
    assert not (world.sandbox.root / "evil.txt").exists()
    _assert_untouched(world, uploads)


# -- 2. every wait is bounded, and sessions are never ended silently --------------------------------------

@pytest.mark.parametrize("hold", ["lock table clients in access exclusive mode", "select count(*) from clients"],
                         ids=["a_lock", "an_open_transaction"])
def test_a_session_on_staging_is_named_within_the_timeout(fresh_world: FaultWorld, hold: str) -> None:
    world = fresh_world
    uploads = _plant_upload(world)
    with connect(world.sandbox.env("staging")) as holder:
        holder.execute("begin")
        holder.execute(hold)
        pid = holder.execute("select pg_backend_pid()").fetchone()[0]
        began = time.monotonic()
        result = _restore(world, env={"BACKUP_FILE": str(_dump(world))}, timeout=90)
        seconds = time.monotonic() - began
        holder.execute("rollback")
    assert seconds < 60, seconds
    assert_message(result, f"pid {pid}", "user postgres", "since", "--terminate-sessions",
                   "nothing was changed", code=1)
    _assert_untouched(world, uploads)


def test_terminate_sessions_ends_them_and_journals_each_pid(fault_world: FaultWorld) -> None:
    world = fault_world
    holder = connect(world.sandbox.env("staging"))
    holder.execute("begin")
    holder.execute("select count(*) from clients")  # an open transaction, no lock held by a DDL
    pid = holder.execute("select pg_backend_pid()").fetchone()[0]
    try:
        result = _restore(world, "--terminate-sessions", "--json", env={"BACKUP_FILE": str(_dump(world))})
    finally:
        holder.close()
    assert result.exit_code == 0, result.output
    journal = Path(json.loads(result.stdout)["journal"])
    logged = [line for event in read_events(journal) for line in getattr(event, "lines", [])]
    assert any(f"terminated session pid {pid}" in line for line in logged), logged
    assert f"terminated session pid {pid}" in result.stderr
    assert not world.sentinel.present()  # staging now holds the dump
    world.unchanged()
    assert leftovers(world.sandbox) == []


# -- 3. a failed dump restore undoes itself ---------------------------------------------------------------

def _before_completion(sql: bytes, line: bytes) -> bytes:
    end = sql.index(b"--\n-- PostgreSQL database dump complete")
    return sql[:end] + line + b"\n" + sql[end:]


@pytest.mark.parametrize("forge, words", [
    (lambda sql, pwned: _insert_after_first_copy(sql, b"select 1/0;"), ("division by zero",)),
    (lambda sql, pwned: _insert_after_first_copy(_without_restrict(sql), b"select 1; \\! id > " + pwned),
     ("backslash commands are restricted",)),
    (lambda sql, pwned: _before_completion(sql, b"drop table public.invoices;"),
     ("verification failed", "invoices", "renamed", "back to")),
    (lambda sql, pwned: _insert_after_first_copy(sql, b"copy (select 1) to '/root/drtui-denied.txt';"),
     ("Permission denied", "/root/drtui-denied.txt", "run as 'postgres'")),
], ids=["sql_error_half_way", "shell_command_mid_line", "verify_fails_after_uploads", "permission_denied"])
def test_a_failed_dump_restore_puts_staging_back(fault_world: FaultWorld, forge, words: tuple[str, ...]) -> None:
    world = fault_world
    uploads = _plant_upload(world)
    pwned = world.sandbox.root / "pwned.txt"
    forged = _forged(world, forge(_sql(world), str(pwned).encode()))
    result = _restore(world, env={"BACKUP_FILE": str(forged), "UPLOADS_ARCHIVE": str(_uploads(world))})
    assert_message(result, *words, "the restore undid itself", "back from the pre-restore dump", "as before",
                   code=1)
    assert not pwned.exists()
    assert "recovered to" not in result.output
    assert world.sentinel.present()
    assert tree_digest(_staging_uploads(world)) == uploads
    world.unchanged()
    assert leftovers(world.sandbox) == []


# -- 3 and 10. rollback knows dump restores; safety copies are aged out ---------------------------------

def test_rollback_puts_a_dump_restore_back_and_old_safety_copies_age_out(fault_world: FaultWorld) -> None:
    world = fault_world
    uploads = _plant_upload(world)
    staging = world.sandbox.env("staging")
    state = world.sandbox.root / "ops" / "state" / "drtui" / "pre_restore"
    state.mkdir(parents=True)
    old = [f"2020010{i}T000000Z" for i in range(1, 5)]
    for stamp in old:
        (state / f"cleaning_staging_pre_restore_{stamp}.sql.gz").write_bytes(gzip.compress(b"-- old\n"))
        for kind in ("pre_restore", "failed"):
            (_staging_uploads(world).parent / f"uploads.{kind}_{stamp}").mkdir()
    done = _restore(world, env={"BACKUP_FILE": str(_dump(world)), "UPLOADS_ARCHIVE": str(_uploads(world))})
    assert done.exit_code == 0, done.output
    assert not world.sentinel.present()
    assert "aged out" in done.output and "the newest 3" in done.output
    names = [p.name for p in _safety_copies(world)]
    assert len([n for n in names if "pre_restore_2020" in n and n.endswith(".sql.gz")]) == 2
    assert len([n for n in names if n.startswith("uploads.pre_restore_2020")]) == 2
    assert len([n for n in names if n.startswith("uploads.failed_2020")]) == 3

    rolled = world.drtui("rollback", "--env", "staging")
    assert rolled.exit_code == 0, rolled.output
    assert "pre_restore" in rolled.output and "cleaning" in rolled.output
    assert world.sentinel.present()
    assert tree_digest(_staging_uploads(world)) == uploads
    assert staging.uploads_dir is not None
    world.unchanged()
    assert leftovers(world.sandbox) == []


def _custom_dump(world: FaultWorld, name: str = f"cleaning_{STAMP}.dump") -> Path:
    production = world.sandbox.env("production")
    path = world.sandbox.root / "forged" / name
    path.parent.mkdir(exist_ok=True)
    subprocess.run([str(production.pg_bin / "pg_dump"), "-Fc", "-h", production.host, "-p", str(production.port),
                    "-U", production.user, "-d", production.database, "-f", str(path)], check=True,
                   env={"PGPASSWORD": production.password() or ""})
    _pair_with_uploads(world, path)
    return path


def test_a_truncated_custom_format_dump_is_refused(fresh_world: FaultWorld) -> None:
    world = fresh_world
    uploads = _plant_upload(world)
    dump = _custom_dump(world)
    dump.write_bytes(dump.read_bytes()[:-200])  # its table of contents whole, its data cut
    result = _restore(world, env={"BACKUP_FILE": str(dump)})
    assert_message(result, str(dump), "cannot be read to its end", "do not restore from it", code=2)
    _assert_untouched(world, uploads)


def test_custom_format_and_a_dump_named_on_purpose_restore(fault_world: FaultWorld) -> None:
    world = fault_world
    custom = _custom_dump(world)
    expected = world.sandbox.counts("production")
    done = _restore(world, env={"BACKUP_FILE": str(custom)})
    assert done.exit_code == 0, done.output
    assert "a pg_dump archive" in done.output
    assert world.sandbox.counts("staging") == expected
    other = _forged(world, _sql(world), name=f"otherdb_{STAMP}.sql.gz")
    named = _restore(world, "--source-database", "otherdb", env={"BACKUP_FILE": str(other)})
    assert named.exit_code == 0, named.output
    world.unchanged()
    assert leftovers(world.sandbox) == []


def test_a_pre_restore_dump_counts_as_its_databases(fresh_world: FaultWorld) -> None:
    world = fresh_world
    staging = world.sandbox.env("staging")
    saved = _forged(world, _sql(world), name=f"cleaning_staging_pre_restore_{STAMP}.sql.gz")
    assert check_dump(saved, staging).format == "plain"
    other = _forged(world, _sql(world), name=f"cleaning_archive_{STAMP}.sql.gz")
    with pytest.raises(DumpRefused, match="'cleaning_archive'"):
        check_dump(other, staging)
