"""A Docker Engine and a PostgreSQL 15 image for tests and benchmarks, with no registry.

The image is a root file system made from this host's installed Debian packages (the dependency closure of
`postgresql-15` and a few basics), imported through the Docker SDK. Nothing is ever pulled. The engine is
Debian's `dockerd`, started with its state in temporary folders and iptables/forwarding off, so no container
can reach beyond this machine.

`python -m drtui.sandbox.docker_image build` builds the image into the engine at DOCKER_HOST.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

DEFAULT_SOCKET = "unix:///tmp/drtui-docker.sock"
PG_IMAGE = os.environ.get("DRTUI_PG_IMAGE", "localhost/drtui-pg:15")
PG_BIN = "/usr/lib/postgresql/15/bin"
WAL_MOUNT = "/wal_archive"
PACKAGES = ("postgresql-15", "postgresql-client-15", "postgresql-common", "postgresql-client-common", "bash",
            "coreutils", "dash", "libc-bin", "procps", "util-linux", "findutils", "grep", "sed", "gzip", "tar",
            "tzdata", "base-files", "base-passwd", "netbase")

ENTRYPOINT = """#!/bin/bash
# initialise the cluster on first start (empty volume), then run the server in the foreground
set -e
export PGDATA=${PGDATA:-/var/lib/postgresql/data}
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  initdb -D "$PGDATA" -U "${POSTGRES_USER:-postgres}" --auth=trust -E UTF8 --locale=C >/dev/null
  echo "host all all 0.0.0.0/0 trust" >> "$PGDATA/pg_hba.conf"
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' "$@"
"""


def engine_url(environ: dict[str, str] | None = None) -> str:
    environ = dict(os.environ) if environ is None else environ
    return environ.get("DOCKER_HOST") or DEFAULT_SOCKET


def answers(base_url: str, timeout: float = 3) -> bool:
    """Whether an engine answers /_ping at `base_url`."""
    try:
        client = docker.DockerClient(base_url=base_url, timeout=timeout)
    except docker.errors.DockerException:
        return False
    try:
        return bool(client.ping())
    except (docker.errors.DockerException, OSError):
        return False
    finally:
        client.close()


@dataclass
class Dockerd:
    """A dockerd started by us: its process, its socket and its state folders."""

    process: subprocess.Popen
    base_url: str
    state: Path
    exec_root: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        # containers' overlay mounts may remain under the data root; unmount before removing it
        for mounts in (Path("/proc/mounts"),):
            for line in reversed(mounts.read_text().splitlines()):
                target = line.split()[1]
                if target.startswith((str(self.state), str(self.exec_root))):
                    subprocess.run(["umount", "-l", target], check=False, capture_output=True)
        shutil.rmtree(self.state, ignore_errors=True)
        shutil.rmtree(self.exec_root, ignore_errors=True)


def start_dockerd(socket_path: str = "/tmp/drtui-docker.sock", timeout: float = 60) -> Dockerd:
    """Start Debian's dockerd on a unix socket, its state in temp folders, without iptables or forwarding."""
    binary = shutil.which("dockerd")
    if not binary:
        raise RuntimeError("dockerd is not installed (apt-get install --no-install-recommends docker.io)")
    state = Path(tempfile.mkdtemp(prefix="drtui-dockerd-"))
    exec_root = Path(tempfile.mkdtemp(prefix="dde-", dir="/tmp"))  # short: it holds containerd's socket
    log = (state / "dockerd.log").open("ab")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(socket_path)
    process = subprocess.Popen(
        [binary, "--host", f"unix://{socket_path}", "--data-root", str(state / "root"), "--exec-root",
         str(exec_root), "--pidfile", str(state / "dockerd.pid"), "--iptables=false", "--ip-forward=false"],
        stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
    engine = Dockerd(process, f"unix://{socket_path}", state, exec_root)
    deadline = time.monotonic() + timeout
    while not answers(engine.base_url, timeout=2):
        if process.poll() is not None or time.monotonic() > deadline:
            engine.stop()
            raise RuntimeError(f"dockerd did not answer on {socket_path}; see {state / 'dockerd.log'}")
        time.sleep(0.2)
    return engine


def _closure(packages: tuple[str, ...]) -> list[str]:
    out = subprocess.run(["apt-cache", "depends", "--recurse", "--installed", "--no-recommends", "--no-suggests",
                          "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances", *packages],
                         capture_output=True, text=True, check=True).stdout
    return sorted({line.split(":")[0] for line in out.splitlines() if line and not line.startswith((" ", "<"))})


def build_rootfs(out: Path) -> None:
    """Write a tarball of a root file system holding PostgreSQL 15, from this host's installed packages."""
    root = Path(tempfile.mkdtemp(prefix="drtui-rootfs-"))
    try:
        root.chmod(0o755)
        listed = subprocess.run(["dpkg", "-L", *_closure(PACKAGES)], capture_output=True, text=True,
                                check=False).stdout
        files = sorted({p for p in listed.splitlines()
                        if p.startswith("/") and (os.path.islink(p) or os.path.isfile(p))})
        for sub in ("usr/bin", "usr/sbin", "usr/lib", "usr/lib64", "etc"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        base = ["bin", "sbin", "lib", "lib64", "etc/passwd", "etc/group", "etc/nsswitch.conf", "etc/hosts"]
        _copy_paths([p for p in base if os.path.lexists(f"/{p}")], root)
        _copy_paths([p.lstrip("/") for p in files], root)
        for sub in ("tmp", "run/postgresql", "var/lib/postgresql/data", WAL_MOUNT.lstrip("/"), "proc", "sys",
                    "dev", "root", "usr/local/bin"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            (root / "var/run").symlink_to("/run")
        (root / "tmp").chmod(0o1777)
        for owned in ("run/postgresql", "var/lib/postgresql", "var/lib/postgresql/data", WAL_MOUNT.lstrip("/")):
            shutil.chown(root / owned, "postgres", "postgres")
        (root / "var/lib/postgresql/data").chmod(0o700)
        entry = root / "usr/local/bin/pg-entrypoint"
        entry.write_text(ENTRYPOINT)
        entry.chmod(0o755)
        subprocess.run(["tar", "-C", str(root), "-cf", str(out), "."], check=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _copy_paths(paths: list[str], root: Path) -> None:
    tar_out = subprocess.Popen(["tar", "-C", "/", "--no-recursion", "-T", "-", "-cf", "-"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    tar_in = subprocess.Popen(["tar", "-C", str(root), "-xf", "-"], stdin=tar_out.stdout)
    assert tar_out.stdin and tar_out.stdout
    tar_out.stdout.close()
    tar_out.stdin.write("\n".join(paths).encode() + b"\n")
    tar_out.stdin.close()
    tar_out.wait()
    if tar_in.wait() != 0:
        raise RuntimeError("copying the host's package files into the root file system failed")


def ensure_pg_image(client: docker.DockerClient, name: str = PG_IMAGE) -> str:
    """The PostgreSQL image `name`, imported from the host's packages unless the engine already has it."""
    try:
        client.images.get(name)
        return name
    except docker.errors.ImageNotFound:
        pass
    repository, tag = name.rsplit(":", 1) if ":" in name.rsplit("/", 1)[-1] else (name, "latest")
    with tempfile.TemporaryDirectory(prefix="drtui-image-") as tmp:
        tarball = Path(tmp) / "rootfs.tar"
        build_rootfs(tarball)
        client.api.import_image(src=str(tarball), repository=repository, tag=tag, changes=[
            "USER postgres",
            f"ENV PATH={PG_BIN}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "ENV PGDATA=/var/lib/postgresql/data",
            "ENV LANG=C.UTF-8",
            'ENTRYPOINT ["/usr/local/bin/pg-entrypoint"]',
            "EXPOSE 5432",
        ])
    client.images.get(name)
    return name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["build"])
    parser.add_argument("--image", default=PG_IMAGE)
    args = parser.parse_args()
    client = docker.DockerClient(base_url=engine_url())
    started = time.monotonic()
    print(f"{ensure_pg_image(client, args.image)} ready in {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()
