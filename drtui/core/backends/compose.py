"""The compose backend: a Docker Compose stack driven through the Docker Engine API (docker SDK), so the
engine's restore steps, the drill and `drtui verify` run on it unchanged.

Containers are found by their compose labels (`com.docker.compose.project` / `service`), never by a name
pattern, so stacks made by Compose v1 (`p_db_1`) and v2 (`p-db-1`) both work. Volumes are found by the
compose volume label, or by their plain or project-prefixed name.

Volumes play the part of data directories. `data_dir` is the data volume's name; a preserved or failed copy
is a volume `<volume>.pre_pitr_<stamp>` / `.failed_<stamp>`, as the runbook names them. A mounted volume
cannot be renamed, so a "rename" is a copy into a new volume and then emptying the source; `VolumePath`
answers `exists()` from the engine (the volume holds data), so the steps' undo logic reads it as written
for renames. The restore itself is extracted on the host beside (under state_dir) while the old cluster
still runs, and copied into the volume at swap-in.

Every write into a volume runs in a short-lived helper container of the db service's own image (or
`helper_image`), so no image is ever pulled; helpers have no network and carry the label
`drtui.project=<project>`.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import subprocess
import tarfile
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

import docker
import docker.errors
from docker.models.containers import Container
from docker.models.volumes import Volume

from drtui.core.backends.base import STALE_FILES, Backend, RecoveryStatus
from drtui.core.clock import stamp
from drtui.core.config import Environment
from drtui.core.errors import DrError
from drtui.core.extract import STAGED_MARKER
from drtui.core.models import BaseBackup, parse_lsn

PROJECT = "com.docker.compose.project"
SERVICE = "com.docker.compose.service"
VOLUME = "com.docker.compose.volume"
DRTUI_PROJECT = "drtui.project"
STAGED_WAL = "drtui_restore_wal"
RECOVERY_BEGIN = "# drtui recovery begin"
RECOVERY_END = "# drtui recovery end"
DEFAULT_MIGRATE = "alembic upgrade head"
CHUNK = 1 << 20
# Settings the local backend sets that belong to the container on this backend.
CONTAINER_OWNED = ("port", "listen_addresses", "unix_socket_directories")


class VolumePath(type(Path())):  # type: ignore[misc]
    """A volume's name where the engine's steps expect a data directory's path: `exists()` asks the engine
    whether the volume holds data, so the steps' undo logic (written for renames) reads it right."""

    backend: ComposeBackend | None = None

    def exists(self, *args: Any, **kwargs: Any) -> bool:
        if self.backend is None or self.is_absolute():
            return super().exists(*args, **kwargs)
        return self.backend.volume_has_data(str(self))


class ComposeError(DrError):
    """The Docker engine, the compose project or one of its pieces is not as the config says."""


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class ComposeBackend(Backend):
    """One environment's compose project on one Docker engine."""

    def __init__(self, env: Environment, state_dir: Path) -> None:
        if not env.project:
            raise ComposeError(f"environment {env.name!r} has backend = compose but no project",
                               'set project = "<compose project name>" in its table')
        self.env = env
        self.project = env.project
        self.state_dir = state_dir
        self.base_url = env.docker_host or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        self._client: docker.DockerClient | None = None
        self._log_thread: threading.Thread | None = None
        self._wal_cleared = False

    # -- the engine and the project ---------------------------------------------------------------
    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            try:
                client = docker.DockerClient(base_url=self.base_url, timeout=120)
                client.ping()
            except (docker.errors.DockerException, OSError) as exc:
                raise ComposeError(f"the Docker engine at {self.base_url} does not answer ({_reason(exc)})",
                                   "start Docker, or set docker_host / DOCKER_HOST to the engine's socket") from exc
            self._client = client
        return self._client

    def containers(self, service: str) -> list[Container]:
        return self.client.containers.list(all=True, filters={"label": [f"{PROJECT}={self.project}",
                                                                        f"{SERVICE}={service}"]})

    def container(self, service: str) -> Container:
        """The (first) container of a service; a clear error naming what exists instead."""
        found = self.containers(service)
        if found:
            return found[0]
        in_project = self.client.containers.list(all=True, filters={"label": f"{PROJECT}={self.project}"})
        if not in_project:
            projects = sorted({c.labels.get(PROJECT, "") for c in self.client.containers.list(
                all=True, filters={"label": PROJECT})} - {""})
            raise ComposeError(f"no compose project named {self.project!r} on {self.base_url} "
                               f"(projects there: {', '.join(projects) or 'none'})",
                               f"check project of environment {self.env.name!r}; `docker compose ls` lists them")
        services = sorted({c.labels.get(SERVICE, "?") for c in in_project})
        raise ComposeError(f"compose project {self.project!r} has no service {service!r} "
                           f"(services: {', '.join(services)})",
                           "check db_service / app_services in the config, or `docker compose up -d` the stack")

    def volume(self, short: str) -> Volume:
        """A volume of the project by its compose name (`pg_data`), or by its plain or prefixed name."""
        labelled = self.client.volumes.list(filters={"label": [f"{PROJECT}={self.project}", f"{VOLUME}={short}"]})
        if labelled:
            return labelled[0]
        for name in (short, f"{self.project}_{short}"):
            with contextlib.suppress(docker.errors.NotFound):
                return self.client.volumes.get(name)
        self.container(self.env.db_service)  # a wrong project or db service says so first
        raise ComposeError(f"no volume {short!r} in compose project {self.project!r}",
                           "check data_volume / wal_volume in the config against `docker volume ls`")

    def _mount_of(self, container: Container, volume: Volume) -> str | None:
        for mount in container.attrs.get("Mounts", []):
            if mount.get("Type") == "volume" and mount.get("Name") == volume.name:
                return mount["Destination"]
        return None

    def check(self) -> None:
        """The db service exists and mounts the data volume at pgdata: before anything is done."""
        db = self.container(self.env.db_service)
        data = self.volume(self.env.data_volume)
        where = self._mount_of(db, data)
        if where != self.env.pgdata:
            raise ComposeError(f"volume {data.name} is {'mounted at ' + where if where else 'not mounted'} in "
                               f"the {self.env.db_service} container, not at {self.env.pgdata}",
                               "check data_volume and pgdata in the config against the compose file")

    @property
    def data_volume(self) -> Volume:
        return self.volume(self.env.data_volume)

    @property
    def data_dir(self) -> Path:
        """The data volume's name (volumes play the part of data directories on this backend)."""
        return self._volume_path(self.data_volume.name)

    def _volume_path(self, name: str) -> VolumePath:
        path = VolumePath(name)
        path.backend = self
        return path

    def volume_has_data(self, name: str) -> bool:
        try:
            self.client.volumes.get(name)
        except docker.errors.NotFound:
            return False
        return bool(self.helper("ls -A /v | head -1", {name: {"bind": "/v", "mode": "ro"}},
                                what=f"looking into {name}").strip())

    def server_log(self) -> Path:
        """A file the db container's log is streamed into from now on (across restarts), for the steps that
        follow a server log; a daemon thread appends to it for the life of this process."""
        path = self.state_dir.absolute() / "logs" / f"compose-{self.project}-{self.env.db_service}.log"
        if self._log_thread is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
            self._log_thread = threading.Thread(target=self._follow_log, args=(path,), daemon=True,
                                                name="drtui-compose-log")
            self._log_thread.start()
        return path

    def _follow_log(self, path: Path) -> None:
        since = time.time()
        while True:
            try:
                stream = self.db.logs(stream=True, follow=True, since=since)
                with path.open("ab") as sink:
                    for chunk in stream:
                        sink.write(chunk)
                        sink.flush()
                        since = time.time()
            except ComposeError:
                return  # the container or the engine is gone: nothing more to follow
            except (docker.errors.DockerException, OSError):
                pass
            time.sleep(0.2)

    def db_log_lines(self, since: datetime | None = None) -> list[str]:
        """The db container's log lines (since a moment), for StepLogged events with source "server"."""
        kwargs: dict[str, Any] = {"since": since} if since else {"tail": 200}
        text = self.container(self.env.db_service).logs(**kwargs).decode(errors="replace")
        return [line for line in text.splitlines() if line.strip()]

    # -- helpers ----------------------------------------------------------------------------------
    @property
    def helper_image(self) -> str:
        if self.env.helper_image:
            return self.env.helper_image
        image = self.container(self.env.db_service).attrs["Config"]["Image"]
        return image

    def helper(self, script: str, volumes: Mapping[str, Mapping[str, str]], *,
               environment: Mapping[str, str] | None = None, what: str = "helper") -> str:
        """Run a shell script as root in a short-lived container of the db's image; its output, or an error."""
        container = self.client.containers.create(
            self.helper_image, entrypoint=["/bin/sh", "-c"], command=[script], user="root",
            volumes=dict(volumes), environment=dict(environment or {}), network_disabled=True,
            labels={DRTUI_PROJECT: self.project, "drtui.helper": what}, working_dir="/")
        try:
            container.start()
            code = container.wait()["StatusCode"]
            output = container.logs().decode(errors="replace")
        finally:
            container.remove(force=True)
        if code != 0:
            lines = [line for line in output.splitlines() if line.strip()]
            raise ComposeError(f"{what} failed in a helper container (exit {code}): "
                               f"{lines[-1] if lines else 'no output'}",
                               "look at the engine's log; nothing else was changed by this step")
        return output

    def _new_volume(self, name: str, origin: str) -> Volume:
        with contextlib.suppress(docker.errors.NotFound):
            self.client.volumes.get(name)
            raise ComposeError(f"volume {name} already exists", "wait a second and retry")
        return self.client.volumes.create(name, labels={DRTUI_PROJECT: self.project, "drtui.origin": origin})

    def copy_volume(self, source: str, dest: str, *, clear: bool = False) -> None:
        script = ("set -e; " + ("find /to -mindepth 1 -delete; " if clear else "")
                  + "cp -a /from/. /to/")
        self.helper(script, {source: {"bind": "/from", "mode": "ro"}, dest: {"bind": "/to", "mode": "rw"}},
                    what=f"copying volume {source} into {dest}")

    def discard(self, path: Path) -> None:
        """Remove a host folder or volume drtui made (a partial restore, staged WAL); never the data volume."""
        if path.is_absolute():
            if path.is_relative_to(self.staging_root):
                shutil.rmtree(path, ignore_errors=True)
            return
        if str(path) == self.data_volume.name:
            raise ComposeError("refusing to remove the data volume", "this is a bug in drtui")
        with contextlib.suppress(docker.errors.NotFound):
            self.client.volumes.get(str(path)).remove(force=True)

    @property
    def staging_root(self) -> Path:
        """Host folder where the engine's steps extract a restore and stage WAL before they reach the volume."""
        root = self.state_dir.absolute() / "compose" / self.project
        root.mkdir(parents=True, exist_ok=True)
        for folder in (root, root.parent):
            folder.chmod(0o755)
        return root

    def sibling(self, kind: str, stamp: str) -> Path:
        """A restore in progress or staged WAL: a host folder under state_dir (the steps extract there while
        the old cluster still runs); preserved or failed data: a volume name `<volume>.<kind>_<stamp>`."""
        name = f"{self.data_volume.name}.{kind}_{stamp}"
        return self.staging_root / name if kind in ("restoring", "pitr_wal") else self._volume_path(name)

    def free_stamp(self, moment: datetime) -> str:
        """A stamp at or after `moment` that no `<volume>.*_<stamp>` volume uses yet."""
        taken = {v.name.rsplit("_", 1)[-1] for v in self.client.volumes.list(filters={"name": self.data_volume.name})}
        while stamp(moment) in taken:
            moment += timedelta(seconds=1)
        return stamp(moment)

    def preserved(self) -> list[Path]:
        prefix = f"{self.data_volume.name}.pre_pitr_"
        return sorted(self._volume_path(v.name) for v in self.client.volumes.list(filters={"name": prefix})
                      if v.name.startswith(prefix))

    @property
    def location(self) -> str:
        return f"compose project {self.project}"

    @property
    def server_reads_host_wal(self) -> bool:
        """No: the WAL reaches the db container by a mount or a copy drtui makes as root."""
        return False

    # -- the application --------------------------------------------------------------------------
    @property
    def has_app_commands(self) -> bool:
        return bool(self.env.app_services)

    def _app_containers(self) -> list[tuple[str, Container]]:
        found = []
        for service in self.env.app_services:
            self.container(service)  # a missing project or service is an error, not "nothing to do"
            found += [(service, container) for container in self.containers(service)]
        return found

    def stop_app(self) -> str | None:
        """Stop the app services' containers, all at once (each has its own stop grace time)."""
        found = self._app_containers()
        with ThreadPoolExecutor(max_workers=max(1, len(found))) as pool:
            list(pool.map(lambda item: self._stop(item[1]), found))
        return f"stopped {', '.join(service for service, _ in found)}" if found else None

    def start_app(self) -> str | None:
        found = self._app_containers()
        with ThreadPoolExecutor(max_workers=max(1, len(found))) as pool:
            list(pool.map(lambda item: item[1].start(), found))
        return f"started {', '.join(service for service, _ in found)}" if found else None

    def _stop(self, container: Container, timeout: int = 60) -> None:
        try:
            container.stop(timeout=timeout)
            container.reload()
        except docker.errors.APIError as exc:
            raise ComposeError(f"container {container.name} did not stop ({_reason(exc)})",
                               f"look at `docker logs {container.name}`; stop it by hand, then retry") from exc
        if container.status not in ("exited", "created"):
            raise ComposeError(f"container {container.name} did not stop within {timeout} s "
                               f"(state {container.status})",
                               f"look at `docker logs {container.name}`; stop it by hand, then retry")

    def services(self) -> dict[str, str]:
        """Each service's container state ("running", "exited", ... or "missing"), db first."""
        states = {}
        for service in (self.env.db_service, *self.env.app_services):
            found = self.containers(service)
            states[service] = found[0].status if found else "missing"
        return states

    def migrate(self) -> str:
        """Run the migrate command in the first app service's container (`alembic upgrade head`)."""
        service = self.env.app_services[0] if self.env.app_services else self.env.db_service
        command = self.env.migrate_command or DEFAULT_MIGRATE
        container = self.container(service)
        container.reload()
        if container.status != "running":
            raise ComposeError(f"cannot run the migrate command: {container.name} is {container.status}",
                               f"start it (`docker compose start {service}`), then run `drtui` again")
        result = container.exec_run(["/bin/sh", "-c", command])
        output = result.output.decode(errors="replace").strip()
        if result.exit_code != 0:
            raise ComposeError(f"the migrate command failed in {service} (exit {result.exit_code}): "
                               f"{output.splitlines()[-1] if output else 'no output'}",
                               f"run `docker compose exec -T {service} {command}` by hand to see why")
        return output

    # -- the database -----------------------------------------------------------------------------
    @property
    def db(self) -> Container:
        return self.container(self.env.db_service)

    def server_alive(self) -> bool:
        db = self.db
        db.reload()
        return db.status == "running"

    def server_running(self) -> bool:
        return self.server_alive() and self.db.exec_run(["pg_isready", "-q", "-h", "127.0.0.1"]).exit_code == 0

    def stop_server(self) -> None:
        self._stop(self.db)

    def start_server(self, wait: bool = True, timeout: float = 120) -> None:
        db = self.db
        db.start()
        if not wait:
            return
        deadline = time.monotonic() + timeout
        while True:
            db.reload()
            if db.status != "running":
                tail = self.db_log_lines()[-3:]
                raise ComposeError(f"the {self.env.db_service} container stopped while starting "
                                   f"({db.attrs['State'].get('ExitCode')}): {' | '.join(tail)}",
                                   f"read `docker compose logs {self.env.db_service}`")
            if db.exec_run(["pg_isready", "-q", "-h", "127.0.0.1"]).exit_code == 0:
                return
            if time.monotonic() > deadline:
                raise ComposeError(f"PostgreSQL in {db.name} did not accept connections within {timeout:.0f} s",
                                   f"read `docker compose logs {self.env.db_service}`")
            time.sleep(0.1)

    def recovery_status(self) -> RecoveryStatus | None:
        if not self.server_alive():
            return None
        result = self.db.exec_run(["psql", "-h", "127.0.0.1", "-U", self.env.user, "-d", "postgres", "-XAtq",
                                   "-F", "|", "-c",
                                   "select pg_is_in_recovery(), pg_last_wal_replay_lsn(), "
                                   "extract(epoch from pg_last_xact_replay_timestamp()), "
                                   "case when pg_is_in_recovery() then pg_is_wal_replay_paused() end"],
                                  user="postgres")
        if result.exit_code != 0:
            return None
        in_recovery, lsn, epoch, paused = result.output.decode().strip().split("|")
        if in_recovery == "f":
            self._clear_staged_wal()
        return RecoveryStatus(in_recovery == "t", parse_lsn(lsn) if lsn else None,
                              datetime.fromtimestamp(float(epoch)).astimezone() if epoch else None, paused == "t")

    def promote(self, wait: bool = True) -> None:
        result = self.db.exec_run(["pg_ctl", "promote", "-D", self.env.pgdata, *(["-w", "-t", "120"] if wait
                                                                                 else ["-W"])], user="postgres")
        if result.exit_code != 0:
            raise ComposeError(f"pg_ctl promote in {self.db.name} failed: {result.output.decode().strip()}",
                               f"read `docker compose logs {self.env.db_service}`")

    # -- volumes as data directories --------------------------------------------------------------
    def preserve(self, stamp: str) -> Path | None:
        """Move the data volume's contents into a new volume `<volume>.pre_pitr_<stamp>` (a copy, then the data
        volume is emptied, as a rename would leave it); the database must be stopped."""
        return self._move_aside("pre_pitr", stamp)

    def set_aside(self, stamp: str, kind: str = "failed") -> Path | None:
        return self._move_aside(kind, stamp)

    def _move_aside(self, kind: str, stamp: str) -> Path | None:
        source = self.data_volume.name
        if not self.volume_has_data(source):
            return None
        dest = self._new_volume(f"{source}.{kind}_{stamp}", source).name
        self.helper("set -e; cp -a /from/. /to/; find /from -mindepth 1 -delete",
                    {source: {"bind": "/from", "mode": "rw"}, dest: {"bind": "/to", "mode": "rw"}},
                    what=f"moving {source} into {dest}")
        return self._volume_path(dest)

    def put_in_place(self, restored: Path) -> None:
        """Replace the data volume's contents with a preserved volume's or a restored host folder's, owned by
        postgres; the source is then removed, as a rename would (the database must be stopped)."""
        if not restored.is_absolute():
            self.copy_volume(str(restored), self.data_volume.name, clear=True)
            self.client.volumes.get(str(restored)).remove()
            return
        self.copy_in(restored, self.copy_method)
        shutil.rmtree(restored)

    @property
    def copy_method(self) -> str:
        """How a host folder reaches a volume: `bind` (a helper copies from a read-only bind mount) where the
        engine is on this machine, else `upload` (the API's archive upload: the only way to a remote engine)."""
        return "bind" if self.base_url.startswith("unix://") else "upload"

    def copy_in(self, folder: Path, method: str) -> None:
        """Replace the data volume's contents with a host folder's, owned by postgres, mode 0700."""
        volume = self.data_volume.name
        fix = "chown -R postgres:postgres /data; chmod 700 /data"
        if method == "bind":
            self.helper(f"set -e; find /data -mindepth 1 -delete; cp -a /restored/. /data/; {fix}",
                        {str(folder): {"bind": "/restored", "mode": "ro"}, volume: {"bind": "/data", "mode": "rw"}},
                        what=f"copying the restored data into {volume}")
            return
        self.helper("find /data -mindepth 1 -delete", {volume: {"bind": "/data", "mode": "rw"}},
                    what=f"emptying {volume}")
        holder = self.client.containers.create(self.helper_image, entrypoint=["/bin/true"], user="root",
                                               volumes={volume: {"bind": "/data", "mode": "rw"}},
                                               network_disabled=True, labels={DRTUI_PROJECT: self.project})
        tar = subprocess.Popen(["tar", "-C", str(folder), "-cf", "-", "."], stdout=subprocess.PIPE)
        try:
            assert tar.stdout
            if not holder.put_archive("/data", iter(lambda: tar.stdout.read(CHUNK), b"")):
                raise ComposeError(f"the engine refused the upload into {volume}", "see the engine's log")
        finally:
            tar.wait()
            holder.remove(force=True)
        self.helper(fix, {volume: {"bind": "/data", "mode": "rw"}}, what=f"preparing {volume}")

    def rollback(self, preserved: Path | None = None, stamp_now: str | None = None) -> Path:
        """Put a preserved volume (default: the newest) back; the current data is set aside first."""
        choices = self.preserved()
        chosen = preserved or (choices[-1] if choices else None)
        if chosen is None or chosen not in choices:
            raise ComposeError(f"no preserved volume {chosen or self.data_volume.name + '.pre_pitr_*'}",
                               "`docker volume ls` shows what exists; nothing was changed")
        self.stop_app()
        if self.server_alive():
            self.stop_server()
        if stamp_now:
            self.set_aside(stamp_now)
        self.put_in_place(chosen)
        self.start_server()
        self.start_app()
        return chosen

    def write_recovery(self, data_dir: Path, settings: Mapping[str, str], signal: str) -> None:
        """Append the recovery settings to postgresql.auto.conf of a (stopped) volume or a restored host folder,
        and the signal file. The server runs in the db container: its port, addresses and sockets stay the
        container's own."""
        settings = {k: v for k, v in settings.items() if k not in CONTAINER_OWNED}
        block = "\n".join([RECOVERY_BEGIN, *(f"{k} = {_quote(v)}" for k, v in settings.items()), RECOVERY_END])
        stale = " ".join(f"/data/{name}" for name in STALE_FILES)
        script = (f'set -e; rm -f {stale}; printf "\\n%s\\n" "$DRTUI_RECOVERY" >> /data/postgresql.auto.conf; '
                  + f"touch /data/{signal}; chown postgres:postgres /data/postgresql.auto.conf /data/{signal}")
        self.helper(script, {str(data_dir): {"bind": "/data", "mode": "rw"}}, environment={"DRTUI_RECOVERY": block},
                    what="writing the recovery settings")

    def restore_command(self, data_dir: Path, folder: Path, backup: BaseBackup) -> str:
        """A command the db container can run: `cp` from the folder where the db container mounts `folder` (a
        live archive read in place), or from `<pgdata>/drtui_restore_wal`, into which staged WAL is
        hard-linked (or another folder's WAL copied); that copy is removed once recovery has ended."""
        inside = f"cp {self.env.pgdata}/{STAGED_WAL}/%f %p"
        dest = data_dir / STAGED_WAL
        if (folder / STAGED_MARKER).is_file():  # hard links: the staged folder stays whole for the follower
            dest.mkdir()
            for entry in os.scandir(folder):
                if entry.is_file() and not entry.name.startswith("."):
                    os.link(entry.path, dest / entry.name)
            return inside
        mounted = self._container_path_of(folder)
        if mounted:
            return f"cp {mounted}/%f %p"
        dest.mkdir()
        for entry in os.scandir(folder):
            if entry.is_file() and not entry.name.startswith("."):
                shutil.copy2(entry.path, dest / entry.name)
        return inside

    def _container_path_of(self, folder: Path) -> str | None:
        """Where the db container sees a host folder: a bind mount of it, or a volume bound to it."""
        for mount in self.db.attrs.get("Mounts", []):
            source = mount.get("Source") if mount.get("Type") == "bind" else None
            if mount.get("Type") == "volume":
                with contextlib.suppress(docker.errors.NotFound):
                    options = self.client.volumes.get(mount["Name"]).attrs.get("Options") or {}
                    source = options.get("device") if "bind" in options.get("o", "") else None
            if source and Path(source).resolve() == folder.resolve():
                return mount["Destination"]
        return None

    def _clear_staged_wal(self) -> None:
        """The WAL brought into the data volume is needed only until promotion."""
        if not self._wal_cleared:
            self.db.exec_run(["rm", "-rf", f"{self.env.pgdata}/{STAGED_WAL}"], user="postgres")
            self._wal_cleared = True

    # -- what a backup reads (core/backup.py owns the sequence), from the db container and the WAL volume
    def _stream_exec(self, argv: list[str], sink: IO[bytes], what: str) -> None:
        exec_id = self.client.api.exec_create(self.db.id, argv, user="postgres", stdout=True, stderr=True)["Id"]
        errors = bytearray()
        for out, err in self.client.api.exec_start(exec_id, stream=True, demux=True):
            if out:
                sink.write(out)
            if err:
                errors += err
        code = self.client.api.exec_inspect(exec_id)["ExitCode"]
        if code != 0:
            lines = errors.decode(errors="replace").strip().splitlines()
            raise ComposeError(f"{what} in {self.env.db_service} failed (exit {code}): "
                               f"{lines[-1] if lines else 'no output'}",
                               f"read `docker compose logs {self.env.db_service}`")

    def dump_to(self, sink: IO[bytes]) -> None:
        self._stream_exec(["pg_dump", "-h", "127.0.0.1", "-U", self.env.user, "-d", self.env.database],
                          sink, "pg_dump")

    def base_backup_to(self, sink: IO[bytes], workdir: Path, label: str) -> None:
        """pg_basebackup in the db container as one tar stream (with WAL); `workdir` is not needed."""
        self._stream_exec(["pg_basebackup", "-h", "127.0.0.1", "-U", self.env.user, "-D", "-", "-Ft",
                           "-X", "fetch", "-c", "fast", "-l", label], sink, "pg_basebackup")

    def archived_wal(self) -> Iterator[tuple[tarfile.TarInfo, IO[bytes] | None]]:
        """The WAL volume's segments, read through the db container as one tar stream."""
        wal = self.volume(self.env.wal_volume)
        where = self._mount_of(self.db, wal)
        if where is None:
            raise ComposeError(f"the {self.env.db_service} container does not mount the WAL volume {wal.name}",
                               "check wal_volume in the config")
        stream, _ = self.db.get_archive(where)
        return _top_files(stream)


def _top_files(stream: Iterator[bytes]) -> Iterator[tuple[tarfile.TarInfo, IO[bytes] | None]]:
    """The files at the top of a folder's tar stream (`wal/<name>`), renamed to their bare names."""
    with tarfile.open(fileobj=_IterReader(stream), mode="r|") as source:
        for member in source:
            name = member.name.split("/", 1)[1] if "/" in member.name else ""
            if member.isfile() and name and "/" not in name and not name.startswith("."):
                member.name = name
                yield member, source.extractfile(member)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return re.sub(r"\s+", " ", text[-1] if text else type(exc).__name__)[:200]


class _IterReader(io.RawIOBase):
    """A file-like reader over an iterator of byte chunks (the engine's archive stream)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        while not self._buffer:
            try:
                self._buffer = next(self._chunks)
            except StopIteration:
                return 0
        size = min(len(target), len(self._buffer))
        target[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        return size

