"""`drtui sandbox up|down|demo`: the production-like world on this machine."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from drtui.headless.output import err, out

if TYPE_CHECKING:
    from drtui.sandbox import Sandbox

DEFAULT_ROOT = Path(os.environ.get("DRTUI_SANDBOX", "/tmp/drtui-sandbox"))
root_option = click.option("--root", type=click.Path(path_type=Path), default=DEFAULT_ROOT, show_default=True,
                           help="Folder of the sandbox (DRTUI_SANDBOX).")


@click.group()
def sandbox() -> None:
    """A production-like world (PostgreSQL, WAL archive, API stand-in) to practise on."""


@sandbox.command()
@root_option
@click.option("--traffic/--no-traffic", default=True, help="Keep writing bookings into production.")
def up(root: Path, traffic: bool) -> None:
    """Build the sandbox and leave it running."""
    from drtui.sandbox import Sandbox

    if (root / "sandbox.json").exists():
        raise click.ClickException(f"{root} already holds a sandbox; run `drtui sandbox down --root {root}` first")
    world = Sandbox(root)
    try:
        world.up()
        if traffic:
            world.start_traffic()
    except BaseException:
        world.down()
        raise
    out(f"sandbox up in {root}")
    out(f"  config: {world.config_path}")
    out(f"  tear it down with: drtui sandbox down --root {root}")


@sandbox.command()
@root_option
def down(root: Path) -> None:
    """Stop every process of the sandbox and remove its folder."""
    from drtui.sandbox import Sandbox

    if not root.exists():
        err(f"no sandbox in {root}")
        return
    Sandbox(root).down()
    out(f"sandbox in {root} is down and removed")


def make_recoverable(world: Sandbox) -> None:
    """Give a fresh world something to recover: a dump, a base backup, rows after it, and a WAL sync."""
    from drtui.core import backup
    from drtui.core.clock import SystemClock

    clock = SystemClock()
    config = world.config()
    backup.dump(config, world.env("production"), clock)
    backup.base(config, world.env("production"), clock)
    for _ in range(3):
        world.insert("bookings")
    world.switch_wal()
    backup.wal_sync(config, clock)


@sandbox.command()
@root_option
def demo(root: Path) -> None:
    """Build the sandbox (or reuse the one in --root) with live traffic, then open the wizard on it."""
    from drtui.core.config import load_config
    from drtui.sandbox import Sandbox
    from drtui.tui.app import run_app

    world = Sandbox(root)
    if (root / "sandbox.json").exists() and world.config_path.exists():
        err(f"reusing the sandbox in {root}")
    else:
        err(f"building a sandbox in {root} (PostgreSQL production + staging, WAL archive, API stand-ins)…")
        try:
            world.up()
            world.start_traffic()
            make_recoverable(world)
        except BaseException:
            world.down()
            raise
    run_app(load_config(str(world.config_path), environ={}))
    out(f"the sandbox is still up in {root} (config: {world.config_path})")
    out(f"  open the wizard again:  drtui --config {world.config_path}")
    out(f"  tear it down with:      drtui sandbox down --root {root}")
