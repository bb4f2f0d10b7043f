"""`drtui sandbox up|down|demo`: the production-like world on this machine."""

from __future__ import annotations

import os
from pathlib import Path

import click

from drtui.headless.output import err, out

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
