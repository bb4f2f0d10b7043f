"""`drtui sandbox up|down|demo`: the production-like world on this machine."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from drtui.headless.common import handle_errors
from drtui.headless.output import err, out

if TYPE_CHECKING:
    from drtui.sandbox import Sandbox

DEFAULT_ROOT = Path(os.environ.get("DRTUI_SANDBOX", "/tmp/drtui-sandbox"))
root_option = click.option("--root", type=click.Path(path_type=Path), default=DEFAULT_ROOT, show_default=True,
                           help="Folder of the sandbox (DRTUI_SANDBOX).")


def drtui_command() -> str:
    """This very drtui as a command that works when pasted: `drtui` when the PATH finds it, else the console
    script beside this Python (a venv's bin, which `make demo` does not put on the PATH)."""
    script = Path(sys.executable).parent / "drtui"
    if not script.exists():
        return f"{sys.executable} -m drtui"
    found = shutil.which("drtui")
    return "drtui" if found and Path(found).resolve() == script.resolve() else str(script)


@click.group()
def sandbox() -> None:
    """A production-like world (PostgreSQL, WAL archive, API stand-in) to practise on."""


@sandbox.command()
@root_option
@click.option("--traffic/--no-traffic", default=True, help="Keep writing bookings into production.")
@handle_errors
def up(root: Path, traffic: bool) -> None:
    """Build the sandbox and leave it running."""
    from drtui.sandbox import Sandbox

    if (root / "sandbox.json").exists():
        raise click.ClickException(f"{root} already holds a sandbox; run `{drtui_command()} sandbox down --root "
                                   f"{root}` first")
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
    connect_lines(world)
    out(f"  tear it down with: {drtui_command()} sandbox down --root {root}")


def connect_lines(world: Sandbox) -> None:
    """How to reach the sandbox's databases with psql (the password is read from each env file, not printed)."""
    for name in ("production", "staging"):
        out(f"  psql to {name + ':':<11} {world.connect_command(name)}")


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


def running(world: Sandbox) -> bool:
    """Whether a sandbox was built in the world's root and its production and staging servers still run."""
    from drtui.core.errors import DrError
    from drtui.core.postgres import LocalServer, ServerState

    if not (world.root / "sandbox.json").exists() or not world.config_path.exists():
        return False
    try:
        config = world.config()
        return all(LocalServer.for_environment(config.environment(name)).state() is ServerState.RUNNING
                   for name in ("production", "staging"))
    except DrError:
        return False


def demo_world(root: Path) -> Sandbox:
    """The sandbox in `root`, reused when it runs, else (re)built with traffic and something to recover."""
    from drtui.sandbox import Sandbox
    from drtui.sandbox.recipes import make_recoverable

    world = Sandbox(root, app_commands=True)
    if running(world):
        err(f"reusing the running sandbox in {root}")
        return world
    if (root / "sandbox.json").exists():
        err(f"replacing the sandbox in {root}: its servers are not running")
        world.down()
    err(f"building a sandbox in {root} (PostgreSQL production + staging, WAL archive, API stand-ins)…")
    try:
        world.up()
        world.start_traffic()
        make_recoverable(world)
    except BaseException:
        world.down()
        raise
    return world


@sandbox.command()
@root_option
@handle_errors
def demo(root: Path) -> None:
    """Build the sandbox (or reuse the running one in --root) with live traffic, then open the wizard on it."""
    from drtui.core.config import load_config
    from drtui.tui.app import run_app

    world = demo_world(root)
    run_app(load_config(str(world.config_path), environ={}))
    command = drtui_command()
    out(f"the sandbox is still up in {root} (config: {world.config_path})")
    out(f"  open the wizard again:  {command} --config {world.config_path}")
    connect_lines(world)
    out(f"  tear it down with:      {command} sandbox down --root {root}")
