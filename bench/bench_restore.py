"""Restore benchmark: drtui's extraction + restore_command against the bare commands and pgBackRest.

Builds a production-like cluster with the sandbox (`pgbench -i -s SCALE`), takes two base backups with
`drtui.core.backup.base` (`--compress gzip` and `zstd`) and, when pgBackRest is installed (Debian:
`apt-get install pgbackrest`), a full `pgbackrest backup` into each of two repositories (PGBACKREST: its
defaults, and zstd + asynchronous archive-get + one process per core), runs pgbench traffic (archived to the
WAL folder and pushed to both repositories) and notes a target time in its middle, then, interleaved
round-robin, restores the same cluster to the same target:

  pitr     (a) drtui: the real `drtui restore pitr --env staging` (planning, preflight, extraction beside the
               data directory, swap, recovery as a standby promoted on request) from the gzip and from the zstd
               base backup, timed from the command's start to the end of its follow_recovery step (the
               journal's timestamp); its verify step is not timed
           (b) bare:  tar -I pigz -xf (or tar -xzf) + chown -R + `cp` restore_command + recovery.signal
           (c) pgbackrest restore --type=time from each repository (its archive-get as restore_command)
           each from a cold page cache to pg_is_in_recovery() = false.
  tuning   (a) as pitr, with drtui's default replay tuning (recovery_conf.replay_settings: recovery_prefetch
               off), with shared_buffers = "auto" added, and with replay_tuning = false.
  extract  the files only, durable (a trailing `sync` for the tools that do not fsync): drtui from each base
           backup, tar -I pigz -xf + chown, tarfile 'r|gz' data filter + chown, pgbackrest restore from each
           repository; and the limits: zlib inflating the .tar.gz on one core, zstd decoding the .tar.zst (both
           to nothing), and drtui extracting the same bytes as a plain .tar (the write limit), each with its
           source read into the page cache outside the clock.
  replay   WAL replay only, from an extracted, synced data directory: `cp`, drtui's restore_command, and WAL
           pre-staged into pg_wal with restore_command=/bin/false (the ceiling), and drtui with each candidate
           replay setting on its own (replay_candidates); redo span from the server log.

Ratios are the median of per-round ratios (min-max), since the machine's speed drifts between rounds.
Run as root (the clusters run as `postgres`): `.venv/bin/python bench/bench_restore.py --scale 10 --rounds 3`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gzip
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from bench_extract import inflate_zlib, unzstd  # the limits bench_extract.py times (bench/ is on sys.path)
from psycopg import sql

from drtui.core import backup
from drtui.core.clock import SystemClock
from drtui.core.events import RunStarted, StepFinished, StepLogged, StepStarted
from drtui.core.extract import extract_base_backup
from drtui.core.journal import read_events
from drtui.core.models import BaseBackup, Layout
from drtui.core.postgres import chown_to, run_as
from drtui.core.recovery_conf import host_memory, host_shared_buffers, install_fetcher, restore_command
from drtui.sandbox import Sandbox
from drtui.sandbox.world import free_port

PG_BIN = Path(os.environ.get("DRTUI_PG_BIN", "/usr/lib/postgresql/15/bin"))
OS_USER = "postgres"
LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)")


def say(text: str) -> None:
    print(text, flush=True)


def drop_caches(enabled: bool) -> None:
    os.sync()
    if enabled:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")


# -- the fixture ------------------------------------------------------------------------------------


@dataclass
class Fixture:
    world: Sandbox
    work: Path
    tarball: Path
    target: datetime
    archive: Path
    first_segment: str
    pgbackrest: dict[str, Path] = field(default_factory=dict)  # PGBACKREST name -> its configuration
    uncompressed: int = 0
    zstd_tarball: Path | None = None  # the same cluster's base backup made with `--compress zstd`


def _client_env(world: Sandbox) -> dict[str, str]:
    return {**os.environ, "PGPASSWORD": world.env().password() or ""}


def _client_args(world: Sandbox) -> list[str]:
    env = world.env()
    return ["-h", env.host, "-p", str(env.port), "-U", env.user]


def _drtui_env(world: Sandbox) -> dict[str, str]:
    return {**os.environ, "DRTUI_CONFIG": str(world.config_path), "CONFIRM_PITR_RESTORE": "YES"}


def _pgbackrest(conf: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run_as(OS_USER, ["pgbackrest", f"--config={conf}", "--stanza=bench", *args], check=check, timeout=3600)


# The pgBackRest configurations compared, each with its own repository: the package's defaults (gz, one
# process, synchronous archive-get) and its fastest documented restore settings.
PGBACKREST = {"pgbackrest defaults": "",
              "pgbackrest zstd+async": f"compress-type=zst\narchive-async=y\nprocess-max={os.cpu_count() or 2}\n"}


def _setup_pgbackrest(world: Sandbox, work: Path) -> dict[str, Path]:
    """One repository and stanza per PGBACKREST entry; archive_command copies each segment to the WAL folder
    and pushes it to every repository."""
    env = world.env()
    confs = {}
    for name, settings in PGBACKREST.items():
        root = work / name.replace(" ", "-").replace("+", "-")
        for sub in ("repo", "log", "lock", "spool"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        confs[name] = root / "pgbackrest.conf"
        confs[name].write_text(f"""[global]
repo1-path={root}/repo
log-path={root}/log
lock-path={root}/lock
spool-path={root}/spool
start-fast=y
log-level-console=warn
log-level-file=off
{settings}
[bench]
pg1-path={env.data_dir}
pg1-port={env.port}
pg1-socket-path={world.root}/run/production
pg1-user=postgres
""")
        subprocess.run(["chown", "-R", f"{OS_USER}:{OS_USER}", str(root)], check=True)
    with psycopg.connect(host=env.host, port=env.port, dbname="postgres", user=env.user,
                         password=env.password(), autocommit=True) as conn:
        command = " && ".join([f"{{ test -f {world.wal_archive}/%f || cp %p {world.wal_archive}/%f; }}",
                               *(f"pgbackrest --config={conf} --stanza=bench archive-push %p"
                                 for conf in confs.values())])
        conn.execute(sql.SQL("alter system set archive_command = {}").format(sql.Literal(command)))
        conn.execute("select pg_reload_conf()")
    for conf in confs.values():
        _pgbackrest(conf, "stanza-create")
    return confs


def build_fixture(scale: int, traffic: int, work: Path, with_pgbackrest: bool) -> Fixture:
    world = Sandbox(root=work / "world")
    world.__enter__()
    try:
        env = world.env()
        started = time.monotonic()
        subprocess.run([str(PG_BIN / "pgbench"), "-i", "-q", "-s", str(scale), *_client_args(world), env.database],
                       env=_client_env(world), check=True, capture_output=True)
        say(f"pgbench -i -s {scale}: {time.monotonic() - started:.1f} s")
        # The sandbox runs with fsync=off; every restored copy must run with PostgreSQL's default, start-up sync
        # included, so the backup carries fsync=on (postgresql.auto.conf).
        with psycopg.connect(host=env.host, port=env.port, dbname="postgres", user=env.user,
                             password=env.password(), autocommit=True) as conn:
            conn.execute("alter system set fsync = on")
            conn.execute("select pg_reload_conf()")
        confs = _setup_pgbackrest(world, work) if with_pgbackrest else {}
        tarballs = {}
        for method in ("gzip", "zstd"):
            started = time.monotonic()
            tarballs[method] = backup.base(world.config(), env, SystemClock(), compress=method).artifacts[0].path
            say(f"drtui backup base --compress {method}: {time.monotonic() - started:.1f} s -> "
                f"{tarballs[method].name} ({tarballs[method].stat().st_size / 1e6:.1f} MB)")
            time.sleep(1.1)  # the backup's name has one stamp per second
        tarball = tarballs["gzip"]
        for name, conf in confs.items():
            started = time.monotonic()
            _pgbackrest(conf, "backup", "--type=full")
            say(f"{name}: pgbackrest backup --type=full: {time.monotonic() - started:.1f} s")
        with tarfile.open(tarball, "r|gz") as tar:
            label = tar.extractfile(next(iter(tar)))
            assert label
            first = re.search(rb"START WAL LOCATION: \S+ \(file (\w+)\)", label.read())
            assert first
        traffic_proc = subprocess.Popen(
            [str(PG_BIN / "pgbench"), "-T", str(traffic), "-c", "2", "-j", "2", "-n", *_client_args(world),
             env.database], env=_client_env(world), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(traffic / 2)
        with psycopg.connect(host=env.host, port=env.port, dbname=env.database, user=env.user,
                             password=env.password(), autocommit=True) as conn:
            target = conn.execute("select now()").fetchone()[0]
        traffic_proc.wait()
        segment = world.switch_wal()
        with psycopg.connect(host=env.host, port=env.port, dbname="postgres", user=env.user,
                             password=env.password(), autocommit=True) as conn:
            deadline = time.monotonic() + 120
            while (conn.execute("select last_archived_wal from pg_stat_archiver").fetchone()[0] or "") < segment:
                assert time.monotonic() < deadline, "the archiver did not catch up"
                time.sleep(0.1)
        world.server().stop()
        uncompressed = 0
        with tarfile.open(tarball, "r|gz") as tar:
            uncompressed = sum(m.size for m in tar if m.isfile())
        # As the wizard (or any `drtui inventory` / `drtui status`) leaves it: the base backup read through once
        # and cached, so planning does not read the tarball again.
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "drtui", "inventory"], env=_drtui_env(world), check=True,
                       capture_output=True)
        say(f"drtui inventory (reads the base backup through once, then cached): {time.monotonic() - started:.1f} s")
        say(f"target {target.isoformat()}; archive holds {len(os.listdir(world.wal_archive))} files; "
            f"backup holds {uncompressed / 1e6:.0f} MB of data")
        return Fixture(world, work, tarball, target, world.wal_archive, first.group(1).decode(), confs,
                       uncompressed, tarballs["zstd"])
    except BaseException:
        world.__exit__(None, None, None)
        raise


# -- one restored server ----------------------------------------------------------------------------


@dataclass
class Timing:
    total: float
    phases: dict[str, float] = field(default_factory=dict)


def _overrides(run_dir: Path, port: int) -> str:
    return (f"\n# bench overrides\nport = {port}\nunix_socket_directories = '{run_dir}'\nlisten_addresses = ''\n"
            "archive_mode = off\nlog_line_prefix = '%m '\nlogging_collector = off\n")


def _write_recovery(data: Path, run_dir: Path, port: int, target: datetime | None, command: str) -> None:
    settings = f"restore_command = '{command}'\nrecovery_target_action = 'promote'\n"
    if target:
        settings += f"recovery_target_time = '{target.isoformat()}'\n"
    with (data / "postgresql.auto.conf").open("a") as conf:
        conf.write(settings + _overrides(run_dir, port))
    (data / "recovery.signal").touch()
    for name in ("postgresql.auto.conf", "recovery.signal"):
        chown_to(data / name, OS_USER)


def _start_and_promote(data: Path, run_dir: Path, port: int) -> None:
    log = run_dir / "server.log"
    log.touch()
    chown_to(log, OS_USER)
    run_as(OS_USER, [str(PG_BIN / "pg_ctl"), "start", "-W", "-D", str(data), "-l", str(log)], timeout=60)
    deadline = time.monotonic() + 1800
    grace_until = time.monotonic() + 5
    conn = None
    while conn is None:
        try:
            conn = psycopg.connect(host=str(run_dir), port=port, dbname="postgres", user="postgres",
                                   autocommit=True, connect_timeout=5)
        except psycopg.OperationalError:
            if time.monotonic() > deadline or not _alive(data, grace_until):
                raise RuntimeError(f"the restored server did not come up:\n{_fatal_lines(log)}") from None
            time.sleep(0.02)
    with conn:
        while conn.execute("select pg_is_in_recovery()").fetchone()[0]:
            if time.monotonic() > deadline:
                raise RuntimeError("recovery did not finish")
            time.sleep(0.02)


def _alive(data: Path, grace_until: float) -> bool:
    """Is the postmaster running (or still within the moments before it writes postmaster.pid)?"""
    try:
        pid = int((data / "postmaster.pid").read_text().split("\n", 1)[0])
        os.kill(pid, 0)
    except (OSError, ValueError):
        return time.monotonic() < grace_until
    return True


def _fatal_lines(log: Path) -> str:
    return "\n".join(line for line in log.read_text(errors="replace").splitlines() if "FATAL" in line or
                     "PANIC" in line)


def _stop(data: Path) -> None:
    if (data / "postmaster.pid").exists():
        run_as(OS_USER, [str(PG_BIN / "pg_ctl"), "stop", "-D", str(data), "-m", "immediate", "-w"], check=False,
               timeout=120)


def redo_facts(log: Path) -> dict[str, float]:
    """From the server log: seconds of start-up, of redo, and from redo done to accepting writes; WAL files
    restored."""
    first = starts = done = ready = None
    restored = 0
    for line in log.read_text(errors="replace").splitlines():
        stamp = LOG_TIME.match(line)
        when = (datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC).timestamp()
                if stamp else None)
        first = first or when
        if "database system is ready to accept connections" in line:
            ready = when
        if "redo starts at" in line:
            starts = when
        elif "redo done at" in line:
            done = when
        elif "restored log file" in line:
            restored += 1
    facts: dict[str, float] = {"restored": restored}
    if starts and done:
        facts["redo_s"] = done - starts
    if first and starts:
        facts["boot_s"] = starts - first  # start-up, incl. SyncDataDirectory
    if done and ready:
        facts["end_s"] = ready - done  # end of recovery, incl. any end-of-recovery checkpoint
    return facts


@contextlib.contextmanager
def restore_root(fixture: Fixture, name: str) -> Iterator[tuple[Path, Path, int]]:
    root = Path(tempfile.mkdtemp(prefix=f"r-{name}-", dir=fixture.work))
    root.chmod(0o755)
    run_dir = root / "run"
    run_dir.mkdir()
    chown_to(run_dir, OS_USER)
    data = root / "data"
    try:
        yield data, run_dir, free_port()
    finally:
        _stop(data)
        shutil.rmtree(root, ignore_errors=True)


# -- the methods ------------------------------------------------------------------------------------


def _backup(fixture: Fixture, path: Path | None = None) -> BaseBackup:
    """The base backup (by default the gzip one; the extractor tells the compression from the first bytes)."""
    path = path or fixture.tarball
    return BaseBackup(path=path, layout=Layout.PLAIN_TARBALL, label="bench", start_lsn=0,
                      start_wal_file=fixture.first_segment, checkpoint_lsn=0, start_time=fixture.target,
                      timeline=1, pg_version=15, size_bytes=fixture.uncompressed, file_size=path.stat().st_size)


def _quiet(done: int, total: int | None) -> None:
    pass


def extract_drtui(fixture: Fixture, data: Path, path: Path | None = None) -> None:
    extract_base_backup(_backup(fixture, path), data, OS_USER, _quiet, threading.Event())


def extract_tar(fixture: Fixture, data: Path) -> None:
    data.mkdir(mode=0o700)
    program = ["-I", "pigz"] if shutil.which("pigz") else ["-z"]
    subprocess.run(["tar", *program, "-xf", str(fixture.tarball), "-C", str(data)], check=True)
    subprocess.run(["chown", "-R", f"{OS_USER}:{OS_USER}", str(data)], check=True)
    os.sync()


def extract_tarfile(fixture: Fixture, data: Path) -> None:
    data.mkdir(mode=0o700)
    with tarfile.open(fixture.tarball, "r|gz") as tar:
        tar.extractall(data, filter="data")
    subprocess.run(["chown", "-R", f"{OS_USER}:{OS_USER}", str(data)], check=True)
    os.sync()


def restore_pgbackrest(conf: Path, data: Path, target: datetime | None) -> None:
    data.mkdir(mode=0o700)
    chown_to(data, OS_USER)
    when = target.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00") if target else ""
    args = ["--type=time", f"--target={when}", "--target-action=promote"] if target else []
    _pgbackrest(conf, f"--pg1-path={data}", "--archive-mode=off", *args, "restore")


def pitr_drtui(fixture: Fixture, data: Path, run_dir: Path, port: int) -> Timing:
    """`drtui restore pitr` into the sandbox's staging environment (stopped, and its last restore's preserved
    copies removed, before the clock starts)."""
    staging = fixture.world.env("staging")
    fixture.world.server("staging").stop()
    for old in staging.data_dir.parent.glob(f"{staging.data_dir.name}.*_*"):
        shutil.rmtree(old)
    log = staging.server_log
    assert log
    log.unlink(missing_ok=True)
    drop_caches(COLD)
    started = datetime.now(UTC)
    done = subprocess.run([sys.executable, "-m", "drtui", "restore", "pitr", "--env", "staging", "--json",
                           "--target-time", fixture.target.isoformat(), "--base-backup", str(fixture.tarball),
                           "--wal-archive", str(fixture.archive)],
                          env=_drtui_env(fixture.world), capture_output=True, text=True, check=False)
    try:
        summary = json.loads(done.stdout)
    except ValueError:
        raise RuntimeError(f"drtui restore pitr failed ({done.returncode}):\n{done.stderr}") from None
    steps = {step["name"]: step["outcome"] for step in summary["steps"]}
    if steps["follow_recovery"] != "finished":
        raise RuntimeError(f"drtui restore pitr failed: {summary['error']}")
    # The fixture has no backup heartbeat, so /healthz/backup fails verify; verify is not timed anyway.
    moments = {}
    last_log = None
    for event in read_events(Path(summary["journal"])):
        if isinstance(event, StepLogged) and event.step == "follow_recovery":
            if any("replay tuning ended" in line for line in event.lines) and last_log:
                moments["tuning_end"] = event.at - last_log  # return_replay_settings, after the promotion
            last_log = event.at
        if isinstance(event, RunStarted):
            moments["run"] = event.at
        elif isinstance(event, StepStarted | StepFinished):
            moments[(event.kind, event.step)] = event.at
    promoted = moments[("step_finished", "follow_recovery")]
    phases = {"plan": moments["run"] - started,
              "preflight": moments[("step_finished", "preflight")] - moments["run"],
              "extract": moments[("step_finished", "extract")] - moments[("step_started", "extract")],
              "swap": moments[("step_started", "start_postgres")] - moments[("step_finished", "extract")],
              "recover": promoted - moments[("step_started", "start_postgres")]}
    if "tuning_end" in moments:
        phases["tuning_end"] = moments["tuning_end"]
    return Timing((promoted - started).total_seconds(), {k: v.total_seconds() for k, v in phases.items()}
                  | redo_facts(log))


def pitr_drtui_with(table: str) -> Callable[[Fixture, Path, Path, int], Timing]:
    """pitr_drtui with `table` (TOML lines) added to the staging environment's config for this run only."""
    def run(fixture: Fixture, data: Path, run_dir: Path, port: int) -> Timing:
        path = fixture.world.config_path
        original = path.read_text()
        path.write_text(original.replace("[environments.staging]\n", f"[environments.staging]\n{table}\n"))
        try:
            return pitr_drtui(fixture, data, run_dir, port)
        finally:
            path.write_text(original)
    return run


def pitr_bare(fixture: Fixture, data: Path, run_dir: Path, port: int) -> Timing:
    started = time.monotonic()
    data.mkdir(mode=0o700)
    program = ["-I", "pigz"] if shutil.which("pigz") else ["-z"]
    subprocess.run(["tar", *program, "-xf", str(fixture.tarball), "-C", str(data)], check=True)
    subprocess.run(["chown", "-R", f"{OS_USER}:{OS_USER}", str(data)], check=True)
    extracted = time.monotonic()
    _write_recovery(data, run_dir, port, fixture.target, f"cp {fixture.archive}/%f %p")
    _start_and_promote(data, run_dir, port)
    done = time.monotonic()
    return Timing(done - started, {"extract": extracted - started, "recover": done - extracted,
                                   **redo_facts(run_dir / "server.log")})


def pitr_pgbackrest(name: str) -> Callable[[Fixture, Path, Path, int], Timing]:
    """`pgbackrest restore --type=time` from PGBACKREST[name]'s repository; its archive-get (asynchronous or
    not, as configured) is the restored server's restore_command."""
    def run(fixture: Fixture, data: Path, run_dir: Path, port: int) -> Timing:
        conf = fixture.pgbackrest[name]
        started = time.monotonic()
        restore_pgbackrest(conf, data, fixture.target)
        extracted = time.monotonic()
        auto = data / "postgresql.auto.conf"
        # archive-get must find this benchmark's configuration; its spool (the async queue) and lock are this
        # run's own, so no earlier round's queued segments or still-running fetcher are used
        def more_options(line: re.Match[str]) -> str:
            options = ("" if "--config" in line[0] else f"--config={conf} ") + f'--lock-path="{run_dir}/lock" '
            if "archive-async=y" in conf.read_text():  # pgBackRest refuses a spool path without it
                options += f'--spool-path="{run_dir}/spool" '  # quoted: the method's name has a space
            return line[0].replace("pgbackrest ", f"pgbackrest {options}", 1)
        text = re.sub(r"(?m)^restore_command = .*$", more_options, auto.read_text())
        auto.write_text(text + _overrides(run_dir, port))
        _start_and_promote(data, run_dir, port)
        done = time.monotonic()
        _wait_for_fetchers(run_dir)
        return Timing(done - started, {"extract": extracted - started, "recover": done - extracted,
                                       **redo_facts(run_dir / "server.log")})
    return run


def _wait_for_fetchers(run_dir: Path) -> None:
    """Outside the clock: let an asynchronous archive-get still filling this run's queue finish, so it does not
    run into the next method's time."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        busy = False
        for proc in Path("/proc").glob("[0-9]*/cmdline"):
            with contextlib.suppress(OSError):
                busy = busy or f"{run_dir}/spool".encode() in proc.read_bytes()
        if not busy:
            return
        time.sleep(0.1)


def _prepared(fixture: Fixture, data: Path) -> None:
    extract_base_backup(_backup(fixture), data, OS_USER, _quiet, threading.Event())


def replay_with(command: Callable[[Fixture, Path], str],
                tuning: str = "") -> Callable[[Fixture, Path, Path, int], Timing]:
    """A replay run; `tuning` is postgresql.conf text appended for this run only (a candidate replay setting)."""
    def run(fixture: Fixture, data: Path, run_dir: Path, port: int) -> Timing:
        _prepared(fixture, data)
        cmd = command(fixture, data)
        _write_recovery(data, run_dir, port, fixture.target, cmd)
        if tuning:
            with (data / "postgresql.auto.conf").open("a") as conf:
                conf.write(f"# replay tuning candidate\n{tuning}\n")
        drop_caches(COLD)
        started = time.monotonic()
        _start_and_promote(data, run_dir, port)
        done = time.monotonic()
        return Timing(done - started, redo_facts(run_dir / "server.log"))
    return run


def replay_candidates() -> dict[str, str]:
    """Each candidate replay setting of issue 17 point 4, measured on its own against drtui's plain replay, and
    the two that helped at scale 20 together; shared_buffers as drtui sizes it (recovery_conf.host_shared_buffers).
    drtui's restore_command runs without the tuning drtui now writes (recovery_conf.replay_settings)."""
    buffers = f"{host_shared_buffers(host_memory()) >> 20}MB"
    return {"prefetch off": "recovery_prefetch = off",
            "io_concurrency 64": "maintenance_io_concurrency = 64",
            "decode buffer 2MB": "wal_decode_buffer_size = '2MB'",
            "shared_buffers host÷4": f"shared_buffers = '{buffers}'",
            "no restartpoints": "max_wal_size = '64GB'\ncheckpoint_timeout = '1d'",
            "prefetch off + sb÷4": f"recovery_prefetch = off\nshared_buffers = '{buffers}'"}


def _drtui_fetcher(fixture: Fixture, data: Path) -> str:
    install_fetcher(data, OS_USER)
    return restore_command(fixture.archive, 16 << 20, 15)


def _prestage(fixture: Fixture, data: Path) -> str:
    """Copy every archived segment from the backup's start into pg_wal (the replay ceiling)."""
    for name in sorted(os.listdir(fixture.archive)):
        if len(name) == 24 and name >= fixture.first_segment:
            shutil.copyfile(fixture.archive / name, data / "pg_wal" / name)
            chown_to(data / "pg_wal" / name, OS_USER)
    os.sync()
    return "/bin/false"


# -- rounds and report ------------------------------------------------------------------------------

COLD = True


def run_rounds(fixture: Fixture, rounds: int, methods: dict[str, Callable]) -> dict[str, list[Timing]]:
    results: dict[str, list[Timing]] = {name: [] for name in methods}
    names = list(methods)
    for round_no in range(rounds):
        order = names[round_no % len(names):] + names[:round_no % len(names)]
        for name in order:
            with restore_root(fixture, name) as (data, run_dir, port):
                drop_caches(COLD)
                timing = methods[name](fixture, data, run_dir, port)
            results[name].append(timing)
            extra = " ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in timing.phases.items())
            say(f"  round {round_no + 1} {name:<22} {timing.total:7.2f} s  {extra}")
    return results


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def report(title: str, results: dict[str, list[Timing]], baselines: list[str],
           value: Callable[[Timing], float | None] = lambda t: t.total) -> None:
    say(f"\n{title}")
    for name, timings in results.items():
        values = [v for v in map(value, timings) if v is not None]
        if not values:
            continue
        line = f"  {name:<22} {_median(values)} s"
        for base in baselines:
            if base == name or base not in results:
                continue
            ratios = [a / b for a, b in zip(map(value, timings), map(value, results[base]), strict=True)
                      if a is not None and b]
            if ratios:
                line += f"   x {base}: {_median(ratios)}"
        say(line)


GOAL = 0.7  # issue 17: the whole PITR at most 0.7x of pgBackRest with zstd + async on the same data
BEST_PGBACKREST = "pgbackrest zstd+async"


def bench_tuning(fixture: Fixture, rounds: int) -> None:
    """The whole drtui restore pitr with its default replay tuning, with shared_buffers = "auto", and untuned."""
    methods = {"drtui (prefetch off)": pitr_drtui_with(""),
               "drtui + sb auto": pitr_drtui_with('replay_settings = {shared_buffers = "auto"}'),
               "drtui untuned": pitr_drtui_with("replay_tuning = false")}
    say(f"\nPITR with and without drtui's replay tuning, cold cache -> promoted, {rounds} rounds, load {_load()}")
    results = run_rounds(fixture, rounds, methods)
    report("PITR to the target (wall s; ratios: median of per-round ratios)", results, ["drtui untuned"])
    report("  of which start -> promoted", results, ["drtui untuned"], lambda t: t.phases.get("recover"))
    report("  redo span from the server log", results, ["drtui untuned"], lambda t: t.phases.get("redo_s"))


def bench_pitr(fixture: Fixture, rounds: int) -> None:
    methods: dict[str, Callable] = {
        "drtui gzip": pitr_drtui,
        "drtui zstd": lambda f, *rest: pitr_drtui(dataclasses.replace(f, tarball=f.zstd_tarball), *rest),
        "bare": pitr_bare,
        **{name: pitr_pgbackrest(name) for name in fixture.pgbackrest}}
    baselines = [*reversed(fixture.pgbackrest), "bare"]
    say(f"\nPITR, cold cache -> promoted, {rounds} rounds, load {_load()}")
    results = run_rounds(fixture, rounds, methods)
    report(f"PITR to the target (wall s, median (min-max); ratios: median of per-round ratios), load {_load()}",
           results, baselines)
    report("  of which extraction", results, baselines, lambda t: t.phases.get("extract"))
    report("  of which start -> promoted", results, baselines, lambda t: t.phases.get("recover"))
    if BEST_PGBACKREST in results:
        for name in ("drtui gzip", "drtui zstd"):
            ratio = statistics.median(a.total / b.total for a, b in zip(results[name], results[BEST_PGBACKREST],
                                                                          strict=True))
            say(f"goal {name} <= {GOAL}x {BEST_PGBACKREST}: {ratio:.2f}x, {'met' if ratio <= GOAL else 'NOT met'}")


def _load() -> str:
    return "/".join(f"{value:.1f}" for value in os.getloadavg())


def _read_through(path: Path) -> None:
    """Put a file in the page cache (a limit's source, outside its clock)."""
    with path.open("rb", buffering=0) as handle:
        while handle.read(1 << 20):
            pass


def bench_extraction(fixture: Fixture, rounds: int) -> None:
    """drtui's extraction of each base backup against the other tools, and against its two limits: inflating
    (or decoding) the same file on one core without writing, and writing the same bytes without decompressing
    (a plain .tar made from the .tar.gz outside the clock, extracted by drtui, durable)."""
    assert fixture.zstd_tarball
    plain = fixture.work / "basebackup_plain.tar"
    with gzip.open(fixture.tarball, "rb") as inflated, plain.open("wb") as out:
        shutil.copyfileobj(inflated, out, 1 << 20)

    def only(fn: Callable[[Fixture, Path], None], warm: Path | None = None) -> Callable:
        def run(fixture: Fixture, data: Path, run_dir: Path, port: int) -> Timing:
            if warm:
                _read_through(warm)
            started = time.monotonic()
            fn(fixture, data)
            return Timing(time.monotonic() - started)
        return run

    zstd_tarball = fixture.zstd_tarball
    methods = {
        "drtui .tar.gz": only(extract_drtui),
        "drtui .tar.zst": only(lambda f, d: extract_drtui(f, d, zstd_tarball)),
        "tar -I pigz": only(extract_tar),
        "tarfile r|gz": only(extract_tarfile),
        **{name: only(lambda f, d, conf=conf: restore_pgbackrest(conf, d, None))
           for name, conf in fixture.pgbackrest.items()},
        "limit: zlib inflate .tar.gz, 1 core": only(lambda f, d: inflate_zlib(f.tarball), fixture.tarball),
        "limit: zstd decode .tar.zst": only(lambda f, d: unzstd(zstd_tarball), zstd_tarball),
        "limit: write, plain .tar": only(lambda f, d: extract_drtui(f, d, plain), plain)}
    say(f"\nExtraction only, durable, {fixture.uncompressed / 1e6:.0f} MB of data (.tar.gz "
        f"{fixture.tarball.stat().st_size / 1e6:.1f} MB, .tar.zst {zstd_tarball.stat().st_size / 1e6:.1f} MB), "
        f"{rounds} rounds, load {_load()}")
    results = run_rounds(fixture, rounds, methods)
    plain.unlink()
    report(f"Extraction, durable (s; ratios: median of per-round ratios), load {_load()}", results,
           ["limit: write, plain .tar", "limit: zlib inflate .tar.gz, 1 core", "limit: zstd decode .tar.zst",
            *reversed(fixture.pgbackrest)])


def main(argv: list[str] | None = None) -> int:
    global COLD
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=10, help="pgbench scale (10 = about 150 MB of data)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--traffic", type=int, default=20, help="seconds of pgbench traffic after the backup")
    parser.add_argument("--parts", default="pitr,extract,replay")
    parser.add_argument("--warm", action="store_true", help="do not drop the page cache before each run")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        say("run as root: the clusters run as the postgres user, and cold runs drop the page cache")
        return 2
    COLD = not args.warm
    parts = set(args.parts.split(","))
    pgbackrest = shutil.which("pgbackrest") is not None
    say(f"tar decompressor for the bare commands: {'pigz' if shutil.which('pigz') else 'gzip (tar -xzf)'}")
    if not pgbackrest:
        say("pgbackrest is not installed: its runs are skipped (apt-get install pgbackrest to compare)")
    pgbackrest = pgbackrest and bool(parts & {"pitr", "extract"})  # the other parts do not run it
    work = Path(tempfile.mkdtemp(prefix="drtui-bench-", dir=args.workdir))
    work.chmod(0o755)
    fixture = None
    try:
        fixture = build_fixture(args.scale, args.traffic, work, pgbackrest)
        if "pitr" in parts:
            bench_pitr(fixture, args.rounds)
        if "tuning" in parts:
            bench_tuning(fixture, args.rounds)
        if "extract" in parts:
            bench_extraction(fixture, args.rounds)
        if "replay" in parts:
            methods = {
                "pre-staged (ceiling)": replay_with(_prestage),
                "cp": replay_with(lambda f, d: f"cp {f.archive}/%f %p"),
                "drtui restore_command": replay_with(_drtui_fetcher),
                **{f"drtui + {name}": replay_with(_drtui_fetcher, tuning)
                   for name, tuning in replay_candidates().items()},
            }
            say(f"\nWAL replay only (start -> promoted, data already synced), {args.rounds} rounds")
            results = run_rounds(fixture, args.rounds, methods)
            report("Start -> promoted (s)", results, ["pre-staged (ceiling)"])
            report("Redo span from the server log (s; x ceiling > 1 is slower)", results,
                   ["pre-staged (ceiling)", "drtui restore_command"], lambda t: t.phases.get("redo_s"))
    finally:
        if fixture:
            fixture.world.__exit__(None, None, None)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
