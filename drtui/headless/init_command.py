"""`drtui init`: write a commented drtui.toml for this host; `drtui init --check`: what a config would do."""

from __future__ import annotations

import os
import socket
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import click

from drtui.core import config_check, discover
from drtui.core.config import load_config, parse_config
from drtui.core.errors import UsageError
from drtui.core.files import atomic_path
from drtui.headless.common import handle_errors, pass_context
from drtui.headless.output import ExitCode, err, out


@click.command()
@click.option("--output", "-o", type=click.Path(path_type=Path), default=Path("drtui.toml"), show_default=True,
              help="The file to write (with --check: the file to check, unless --config names one).")
@click.option("--force", is_flag=True, help="Replace an existing file.")
@click.option("--check", is_flag=True, help="Validate an existing file and say what each environment would do.")
@click.option("--dir", "folder", type=click.Path(path_type=Path, file_okay=False), default=Path("."),
              help="The app's folder: where to look for .env files, backups/ and ops/ (default: here).")
@click.option("--only-under", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Only clusters whose data directory is under this folder.")
@click.option("--docker-host", default=None, help="The Docker Engine to ask for compose projects (DOCKER_HOST).")
@click.option("--compose-project", default=None, help="Only this compose project.")
@click.option("--no-docker", is_flag=True, help="Do not ask a Docker Engine.")
@pass_context
@handle_errors
def init(ctx, output: Path, force: bool, check: bool, folder: Path, only_under: Path | None,
         docker_host: str | None, compose_project: str | None, no_docker: bool) -> None:
    """Write a drtui.toml describing what is found on this host (never overwrites without --force)."""
    if check:
        raise SystemExit(check_file(Path(ctx.config_options[0]) if ctx.config_options else output))
    output = output.absolute()
    if output.exists() and not force:
        raise UsageError(f"{output} already exists: not overwritten",
                         f"check it with `drtui init --check --output {output}`, write elsewhere with --output, "
                         "or replace it with --force")
    found = discover.discover(folder, only_under=only_under.absolute() if only_under else None,
                              docker_host=docker_host, compose_project=compose_project, search_docker=not no_docker)
    moment = datetime.now(UTC).replace(microsecond=0).isoformat()
    text = discover.render(found, f"drtui.toml written by `drtui init` on {socket.gethostname()} at {moment}\n"
                                  f"for the app in {found.folder}.")
    parse_config(tomllib.loads(text), output)  # what init writes must load
    output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(output, overwrite=force) as tmp:
        tmp.write_text(text)
    out(f"wrote {output}")
    for env in found.environments:
        where = env.value("project") or env.value("data_dir")
        guessed = " (name guessed)" if env.name.guessed else ""
        out(f"  {env.name.value}{guessed}: {env.value('backend')} {where}, port {env.value('port')}")
    if not found.environments:
        err("no PostgreSQL server found: fill in [environments.production] by hand")
    out(f"  next: review the lines marked `guessed`, then `drtui init --check --output {output}`")


def check_file(path: Path) -> int:
    config = load_config(str(path), environ=os.environ)
    out(f"{config.source}: valid, {len(config.environments)} environment(s)")
    for name, folder in (("backup_dir", config.backup_dir), ("wal_archive", config.wal_archive)):
        out(f"  {name}: {folder} ({'exists' if folder.is_dir() else 'missing'})")
    failed = False
    for result in config_check.check_config(config):
        out(f"[{result.name}] {'ok' if result.ok else 'PROBLEM'}")
        for line in result.facts:
            out(f"  {line}")
        for line in result.would:
            out(f"  would: {line}")
        failed |= not result.ok
    return ExitCode.FAILED if failed else ExitCode.OK
