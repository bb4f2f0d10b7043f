"""The `drtui` command: a bare `drtui` opens the wizard; every subcommand is headless.

Each runbook variable maps onto an option through click's `envvar=`, so `TARGET_ENV=staging drtui ...` and
`drtui ... --env staging` mean the same.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any

import click

from drtui.core.config import Config, load_config
from drtui.core.errors import DrError
from drtui.headless.output import report_error


class Context:
    """What every subcommand shares: the config file option and the loaded, overridden config."""

    def __init__(self, config_option: str | None) -> None:
        self.config_option = config_option

    def config(self, env_name: str | None = None) -> Config:
        return load_config(self.config_option).with_overrides(env_name, os.environ)


pass_context = click.make_pass_decorator(Context)


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a DrError into its message on stderr and its exit code; never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except DrError as exc:
            sys.exit(report_error(exc))

    return wrapper


env_option = click.option("--env", "env_name", envvar="TARGET_ENV", default=None,
                          help="Environment from the config (TARGET_ENV); default: production.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print a machine-readable result.")


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_option", envvar="DRTUI_CONFIG", default=None, metavar="FILE",
              help="drtui.toml to use (DRTUI_CONFIG; default: ./drtui.toml).")
@click.version_option(package_name="drtui")
@click.pass_context
def main(ctx: click.Context, config_option: str | None) -> None:
    """drtui: a guided disaster-recovery console for PostgreSQL."""
    ctx.obj = Context(config_option)
    if ctx.invoked_subcommand is None:
        from drtui.tui.app import run_app

        try:
            run_app(ctx.obj.config(os.environ.get("TARGET_ENV")))
        except DrError as exc:
            sys.exit(report_error(exc))


def _register() -> None:
    from drtui.headless import backup_commands, sandbox_commands

    main.add_command(backup_commands.backup)
    main.add_command(sandbox_commands.sandbox)


_register()
