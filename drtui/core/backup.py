"""The runbook's backup scripts as functions: `backup_now.sh` (dump), `backup_verify.sh` (verify),
`backup_basebackup.sh` (base) and `wal_archive_sync.sh` (wal-sync).

Every artifact is written under a temporary name and renamed only when whole, and each heartbeat is written
last, only on success, so a failed backup never makes monitoring believe a good one exists.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import tarfile
import tempfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from drtui.core.clock import Clock, stamp
from drtui.core.config import PRODUCTION, Config, Environment, pg_bin_missing
from drtui.core.errors import BackupError
from drtui.core.files import atomic_path, write_heartbeat

CHUNK = 1 << 20
GZIP_LEVEL = 6
DUMP_COMPLETE = b"-- PostgreSQL database dump complete"
LAST_SUCCESS = "LAST_SUCCESS.txt"
LAST_BASEBACKUP = "LAST_BASEBACKUP.txt"
# backup_label first, so that a reader learns what the backup is from its first member.
LEADING_MEMBERS = ("backup_label", "PG_VERSION", "backup_manifest")


@dataclass
class Artifact:
    path: Path
    size_bytes: int


@dataclass
class BackupResult:
    kind: str
    artifacts: list[Artifact] = field(default_factory=list)
    heartbeat: Path | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {"kind": self.kind, "ok": True, "seconds": round(self.seconds, 3),
                "heartbeat": str(self.heartbeat) if self.heartbeat else None,
                "artifacts": [{"path": str(a.path), "size_bytes": a.size_bytes} for a in self.artifacts]}


def _client_env(env: Environment) -> dict[str, str]:
    extra = {"PGCONNECT_TIMEOUT": "10"}
    password = env.password()
    if password:
        extra["PGPASSWORD"] = password
    return {**os.environ, **extra}


def _connection_args(env: Environment) -> list[str]:
    return ["-h", env.host, "-p", str(env.port), "-U", env.user, "--no-password"]


def _refuse_existing(path: Path) -> None:
    if path.exists():
        raise BackupError(f"{path}: already exists, and a backup is never overwritten",
                          "wait a second and run the backup again")


def prepare_dir(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".drtui-probe-"):
            pass
    except OSError as exc:
        raise BackupError(f"{folder}: cannot write there ({exc.strerror})",
                          "check backup_dir in the config, the free space and the permissions") from exc


def _run_client(argv: Sequence[str], env: Environment, stdout: int | None = None) -> subprocess.Popen:
    try:
        return subprocess.Popen(argv, stdout=stdout, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                env=_client_env(env))
    except FileNotFoundError as exc:
        raise BackupError(*pg_bin_missing(argv[0])) from exc


def _failure(name: str, env: Environment, stderr: bytes | str) -> BackupError:
    text = stderr.decode(errors="replace") if isinstance(stderr, bytes) else stderr
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return BackupError(f"{name} of {env.name} failed: {lines[-1] if lines else 'no output'}",
                       f"is PostgreSQL of {env.name!r} running and reachable at {env.host}:{env.port}?")


def _compose(config: Config, env: Environment):  # -> ComposeBackend (docker is imported only when used)
    from drtui.core.backends.compose import ComposeBackend

    return ComposeBackend(env, config.state_dir)


def dump(config: Config, env: Environment, clock: Clock) -> BackupResult:
    """pg_dump into `<database>_<stamp>.sql.gz`, the uploads folder into `uploads_<stamp>.tar.gz`,
    then LAST_SUCCESS.txt."""
    if env.backend == "compose":
        return _compose(config, env).backup_dump(config, clock)
    started = clock.monotonic()
    now = clock.now()
    prepare_dir(config.backup_dir)
    result = BackupResult("dump")
    dump_path = config.backup_dir / f"{env.database}_{stamp(now)}.sql.gz"
    uploads_path = config.backup_dir / f"uploads_{stamp(now)}.tar.gz"
    _refuse_existing(dump_path)
    _refuse_existing(uploads_path)
    with atomic_path(dump_path) as tmp:
        proc = _run_client([str(env.pg_bin / "pg_dump"), *_connection_args(env), "-d", env.database],
                           env, stdout=subprocess.PIPE)
        assert proc.stdout and proc.stderr
        with gzip.open(tmp, "wb", compresslevel=GZIP_LEVEL) as gz:
            shutil.copyfileobj(proc.stdout, gz, CHUNK)
        stderr = proc.stderr.read()
        if proc.wait() != 0:
            raise _failure("pg_dump", env, stderr)
    result.artifacts.append(Artifact(dump_path, dump_path.stat().st_size))
    if env.uploads_dir:
        if not env.uploads_dir.is_dir():
            dump_path.unlink()
            raise BackupError(f"{env.uploads_dir}: the uploads folder does not exist",
                              f"fix uploads_dir of environment {env.name!r}, or remove the key")
        with atomic_path(uploads_path) as tmp, tarfile.open(tmp, "w:gz", compresslevel=GZIP_LEVEL) as tar:
            tar.add(env.uploads_dir, arcname="uploads")
        result.artifacts.append(Artifact(uploads_path, uploads_path.stat().st_size))
    result.heartbeat = config.backup_dir / LAST_SUCCESS
    write_heartbeat(result.heartbeat, clock.now())
    result.seconds = clock.monotonic() - started
    return result


def base(config: Config, env: Environment, clock: Clock) -> BackupResult:
    """pg_basebackup (plain, with WAL and manifest), checked by pg_verifybackup, packed into
    `basebackup_<stamp>.tar.gz` with backup_label first, then LAST_BASEBACKUP.txt."""
    if env.backend == "compose":
        return _compose(config, env).backup_base(config, clock)
    started = clock.monotonic()
    now = clock.now()
    prepare_dir(config.backup_dir)
    final = config.backup_dir / f"basebackup_{stamp(now)}.tar.gz"
    _refuse_existing(final)
    workdir = Path(tempfile.mkdtemp(prefix=".basebackup-", dir=config.backup_dir))
    try:
        target = workdir / "data"
        proc = _run_client([str(env.pg_bin / "pg_basebackup"), *_connection_args(env), "-D", str(target),
                            "-Fp", "-X", "stream", "-c", "fast", "-l", f"drtui {stamp(now)}"], env)
        _, stderr = proc.communicate()
        if proc.returncode != 0:
            raise _failure("pg_basebackup", env, stderr)
        verify = subprocess.run([str(env.pg_bin / "pg_verifybackup"), "-q", str(target)],
                                capture_output=True, text=True, check=False)
        if verify.returncode != 0:
            raise BackupError(f"pg_verifybackup rejected the new base backup: {verify.stderr.strip()}",
                              "the backup was not kept; look at the server log and retry")
        with atomic_path(final) as tmp, tarfile.open(tmp, "w:gz", compresslevel=GZIP_LEVEL) as tar:
            for name in LEADING_MEMBERS:
                if (target / name).exists():
                    tar.add(target / name, arcname=name)
            for entry in sorted(target.iterdir()):
                if entry.name not in LEADING_MEMBERS:
                    tar.add(entry, arcname=entry.name)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result = BackupResult("base", [Artifact(final, final.stat().st_size)], config.backup_dir / LAST_BASEBACKUP)
    write_heartbeat(result.heartbeat, clock.now())
    result.seconds = clock.monotonic() - started
    return result


def wal_sync(config: Config, clock: Clock, target: Path | None = None) -> BackupResult:
    """Pack the live WAL archive into `wal_archive_<stamp>.tar.gz` in backup_dir (and copy it to a
    `WAL_SYNC_TARGET` folder), then the WAL sync heartbeat. When production runs on the compose backend,
    the archive is its WAL volume."""
    production = config.environments.get(PRODUCTION)
    check_sync_target(target)
    if production is not None and production.backend == "compose":
        return _compose(config, production).backup_wal_sync(config, clock, target)
    started = clock.monotonic()
    source = config.wal_archive
    if not source.is_dir():
        raise BackupError(f"{source}: the WAL archive folder does not exist",
                          "check wal_archive in the config")
    prepare_dir(config.backup_dir)
    names = sorted(entry.name for entry in os.scandir(source) if entry.is_file() and not entry.name.startswith("."))
    final = config.backup_dir / f"wal_archive_{stamp(clock.now())}.tar.gz"
    _refuse_existing(final)
    with atomic_path(final) as tmp, tarfile.open(tmp, "w:gz", compresslevel=GZIP_LEVEL) as tar:
        for name in names:
            tar.add(source / name, arcname=name)
    return finish_wal_sync(config, clock, started, final, target)


def check_sync_target(target: Path | None) -> None:
    """Refuse a WAL_SYNC_TARGET drtui cannot write to, before any work is done."""
    if target and str(target).startswith("s3:"):
        raise BackupError(f"WAL_SYNC_TARGET={target}: S3 targets are not supported yet",
                          "sync to a mounted folder, or leave WAL_SYNC_TARGET unset")


def finish_wal_sync(config: Config, clock: Clock, started: float, final: Path, target: Path | None) -> BackupResult:
    """Copy a packed WAL tarball to the sync target folder, then write the WAL sync heartbeat."""
    result = BackupResult("wal-sync", [Artifact(final, final.stat().st_size)], config.wal_sync_heartbeat)
    if target:
        prepare_dir(target)
        copy = target / final.name
        with atomic_path(copy) as tmp:
            shutil.copyfile(final, tmp)
        result.artifacts.append(Artifact(copy, copy.stat().st_size))
    write_heartbeat(config.wal_sync_heartbeat, clock.now())
    result.seconds = clock.monotonic() - started
    return result


def newest(folder: Path, prefix: str, suffix: str) -> Path | None:
    """The newest `<prefix><stamp><suffix>` in a folder, by the stamp in its name."""
    found = sorted(p for p in folder.glob(f"{prefix}*{suffix}") if len(p.name) == len(prefix) + 16 + len(suffix))
    return found[-1] if found else None


def verify_dump(path: Path) -> int:
    """Read a `.sql.gz` dump to its end: the gzip stream must close and the SQL end with pg_dump's
    completion line. Returns the uncompressed size."""
    tail = b""
    size = 0
    try:
        with gzip.open(path, "rb") as gz:
            while chunk := gz.read(CHUNK):
                size += len(chunk)
                tail = (tail + chunk)[-4096:]
    except FileNotFoundError:
        raise BackupError(f"{path}: no such dump", "check BACKUP_FILE or backup_dir") from None
    except EOFError:
        raise BackupError(f"{path}: the dump is truncated (the gzip stream ends early)",
                          "do not restore from it; take a new dump with `drtui backup dump`") from None
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise BackupError(f"{path}: not a readable gzip file ({exc})",
                          "do not restore from it; take a new dump with `drtui backup dump`") from None
    if DUMP_COMPLETE not in tail:
        raise BackupError(f"{path}: the SQL dump is incomplete (no '{DUMP_COMPLETE.decode()}' line at its end)",
                          "pg_dump did not finish; take a new dump with `drtui backup dump`")
    return size


def verify_tarball(path: Path) -> int:
    """Read every member of a `.tar.gz` to its end. Returns the number of members."""
    members = 0
    try:
        with tarfile.open(path, "r|gz") as tar:
            for member in tar:
                members += 1
                if member.isfile():
                    handle = tar.extractfile(member)
                    assert handle
                    while handle.read(CHUNK):
                        pass
    except FileNotFoundError:
        raise BackupError(f"{path}: no such archive", "check UPLOADS_ARCHIVE or backup_dir") from None
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise BackupError(f"{path}: the archive is truncated or damaged ({exc})",
                          "do not restore from it; take a new backup") from None
    return members
