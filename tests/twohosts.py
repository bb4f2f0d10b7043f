"""Two hosts that share nothing but a bucket and production's TCP address, on one machine (issue 13, point 6).

`production_host(sandbox)` moves a sandbox's production cluster into a network namespace of the test's own,
with an S3 server beside it; the root namespace, where staging stays, reaches the two only over a veth pair
(production's PostgreSQL on `address`:port, the S3 server on `address`:s3 port). Production then listens on
that address alone, so nothing on 127.0.0.1 answers for it. `ProductionHost.staging_config()` writes the
staging host's drtui.toml: production named by its TCP address, the repository by its bucket and endpoint,
and no path of production's. Everything the context manager made is removed on the way out, pass or fail:
the S3 server, production's server (stopped, so that the sandbox's teardown finds it down), the namespace
and its veth pair.
"""

from __future__ import annotations

import contextlib
import os
import random
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from drtui.core.postgres import as_user
from drtui.sandbox import Sandbox
from drtui.sandbox.world import PASSWORD, PG_BIN
from tests.s3world import ACCESS_KEY, REGION, SECRET_KEY, S3Server


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


@dataclass
class ProductionHost:
    """Production's side: its namespace, the address it answers on, its S3 server and its sandbox."""

    sandbox: Sandbox
    namespace: str
    address: str  # production's end of the veth pair (PostgreSQL and S3 listen here)
    peer: str  # the root namespace's end
    s3: S3Server

    @property
    def port(self) -> int:
        return self.sandbox.env("production").port

    @property
    def endpoint(self) -> str:
        return self.s3.endpoint

    @property
    def credentials(self) -> dict[str, str]:
        """boto3's standard environment for a host of this world: credentials and region, no endpoint (each
        host's config names the endpoint)."""
        return {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_REGION": REGION,
                "AWS_EC2_METADATA_DISABLED": "true"}

    def repository_table(self, url: str) -> str:
        return f'\n[repository]\nurl = "{url}"\nendpoint_url = "{self.endpoint}"\nregion = "{REGION}"\n'

    def staging_config(self, folder: Path, url: str) -> Path:
        """The staging host's drtui.toml in `folder` (its own backup_dir, WAL folder, state and reports, all
        empty): production by TCP address, the repository `url` by its endpoint, staging as the sandbox
        built it. Returns its path."""
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o755)
        staging = self.sandbox.env("staging")
        (folder / "production.env").write_text(f"APP_ENV=prod\nPOSTGRES_PASSWORD={PASSWORD}\n")
        config = folder / "drtui.toml"
        config.write_text(f"""# the staging host: production is a TCP address, the backups are in the bucket
backup_dir = "backups"
wal_archive = "wal_archive"
wal_sync_heartbeat = "state/wal_sync_last_ok.txt"
report_dir = "drill-reports"
state_dir = "state/drtui"

[environments.production]
backend = "local"
pg_bin = "{PG_BIN}"
host = "{self.address}"
port = {self.port}
database = "cleaning"
user = "postgres"
env_file = "production.env"

[environments.staging]
backend = "local"
data_dir = "{staging.data_dir}"
pg_bin = "{staging.pg_bin}"
os_user = "{staging.os_user}"
host = "{staging.host}"
port = {staging.port}
database = "{staging.database}"
user = "{staging.user}"
api_base_url = "{staging.api_base_url}"
env_file = "{staging.env_file}"
uploads_dir = "{staging.uploads_dir}"
server_log = "{staging.server_log}"
{self.repository_table(url)}""")
        for sub in ("backups", "wal_archive", "state/drtui", "drill-reports"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        return config

    def drtui(self, *args: str) -> subprocess.CompletedProcess[str]:
        """drtui on production's host: in its namespace, with its config (the sandbox's)."""
        return subprocess.run(["ip", "netns", "exec", self.namespace, sys.executable, "-m", "drtui", "--config",
                               str(self.sandbox.config_path), *args], capture_output=True, text=True, timeout=120,
                              env={**os.environ, **self.credentials}, check=False)

    @contextmanager
    def wal_sync_cron(self, every: float = 1.0) -> Iterator[None]:
        """The runbook's cron line (`*/5 * * * * drtui backup wal-sync`, to the repository's wal/) on
        production's host, every `every` seconds while the block runs."""
        stop = threading.Event()

        def cron() -> None:
            while not stop.wait(every):
                self.drtui("backup", "wal-sync")

        thread = threading.Thread(target=cron, name="wal-sync-cron", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(150)

    def use_repository(self, url: str) -> None:
        """Production's own drtui.toml (the sandbox's) names its address and the repository."""
        path = self.sandbox.config_path
        text = path.read_text().replace('host = "127.0.0.1"', f'host = "{self.address}"', 1)
        if "[repository]" not in text:
            text += self.repository_table(url)
        path.write_text(text)


def _move_production(sandbox: Sandbox, namespace: str, address: str, peer: str) -> None:
    """Stop production, make it listen on `address` only (pg_hba: the veth pair's two addresses, with a
    password), and start it again inside `namespace`. It keeps archiving into its own folder (wal_archive)."""
    env = sandbox.env("production")
    sandbox.server("production").stop()
    with (env.data_dir / "postgresql.conf").open("a") as conf:
        conf.write(f"\n# drtui two-host test: production in its own namespace\nlisten_addresses = '{address}'\n")
    with (env.data_dir / "pg_hba.conf").open("a") as hba:
        for net in (address, peer):
            hba.write(f"host all all {net}/32 scram-sha-256\nhost replication all {net}/32 scram-sha-256\n")
    pg_ctl = [str(env.pg_bin / "pg_ctl"), "start", "-D", str(env.data_dir), "-w", "-t", "60",
              "-l", str(env.server_log or sandbox.root / "logs" / "production.log")]
    subprocess.run(["ip", "netns", "exec", namespace, *as_user(env.os_user, pg_ctl)],
                   check=True, capture_output=True, text=True, timeout=90, cwd="/")


@contextmanager
def production_host(sandbox: Sandbox) -> Iterator[ProductionHost]:
    """Production (and an S3 server) in a network namespace of its own for as long as the block runs."""
    tag = uuid.uuid4().hex[:6]
    namespace, outside, inside = f"drtui-{tag}", f"drt{tag}h", f"drt{tag}p"
    subnet = f"10.{random.randint(200, 250)}.{random.randint(0, 255)}"
    peer, address = f"{subnet}.1", f"{subnet}.2"
    s3 = S3Server(host=address)
    env = sandbox.env("production")
    try:
        ip("netns", "add", namespace)
        ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        ip("link", "set", inside, "netns", namespace)
        ip("addr", "add", f"{peer}/30", "dev", outside)
        ip("link", "set", outside, "up")
        ip("-n", namespace, "addr", "add", f"{address}/30", "dev", inside)
        ip("-n", namespace, "link", "set", inside, "up")
        ip("-n", namespace, "link", "set", "lo", "up")
        s3.start(wrap=["ip", "netns", "exec", namespace])
        _move_production(sandbox, namespace, address, peer)
        yield ProductionHost(sandbox, namespace, address, peer, s3)
    finally:
        s3.stop()
        with contextlib.suppress(Exception):
            subprocess.run(as_user(env.os_user, [str(env.pg_bin / "pg_ctl"), "stop", "-D", str(env.data_dir),
                                                 "-m", "immediate", "-w"]), capture_output=True, timeout=60)
        for pid in ip("netns", "pids", namespace, check=False).stdout.split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), 9)  # only what this block started runs in its namespace
        ip("netns", "del", namespace, check=False)
        ip("link", "del", outside, check=False)
