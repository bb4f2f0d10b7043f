"""The `drtui` command: a bare `drtui` opens the wizard; every subcommand is headless.

Each runbook variable maps onto an option through click's `envvar=`, so `TARGET_ENV=staging drtui ...` and
`drtui ... --env staging` mean the same.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from drtui.core.errors import DrError
from drtui.core.files import UMASK
from drtui.headless.common import Context, env_option, handle_errors, json_option, pass_context
from drtui.headless.output import report_error

# Re-exported for command modules: they import these from drtui.headless.common.
__all__ = ["Context", "env_option", "handle_errors", "json_option", "main", "pass_context"]


# Each subcommand is imported only when it runs (or for --help): a restore must not wait for what verify,
# the drills or the reports import.
COMMANDS = {
    "attach": "drtui.headless.restore_commands:attach",
    "backup": "drtui.headless.backup_commands:backup",
    "drill": "drtui.headless.drill_commands:drill",
    "drills": "drtui.headless.verify_commands:drills",
    "events": "drtui.headless.events_command:events",
    "init": "drtui.headless.init_command:init",
    "inventory": "drtui.headless.inventory_commands:inventory",
    "report": "drtui.headless.verify_commands:report",
    "restore": "drtui.headless.restore_commands:restore",
    "rollback": "drtui.headless.restore_commands:rollback",
    "sandbox": "drtui.headless.sandbox_commands:sandbox",
    "status": "drtui.headless.inventory_commands:status",
    "verify": "drtui.headless.verify_commands:verify",
    "wal": "drtui.headless.backup_commands:wal",
    "_run": "drtui.headless.restore_commands:run_plan",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, name = COMMANDS[cmd_name].split(":")
        return getattr(importlib.import_module(module), name)


@click.group(cls=LazyGroup, invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_options", envvar="DRTUI_CONFIG", multiple=True, metavar="FILE",
              type=click.Path(dir_okay=False),
              help="drtui.toml to use (DRTUI_CONFIG; default: ./drtui.toml). `drtui status` takes several: a fleet "
                   "(DRTUI_CONFIG then separates them with ':').")
@click.version_option(package_name="drtui")
@click.pass_context
def main(ctx: click.Context, config_options: tuple[str, ...]) -> None:
    """drtui: a guided disaster-recovery console for PostgreSQL."""
    os.umask(UMASK)
    ctx.obj = Context(config_options)
    if ctx.invoked_subcommand is None:
        from drtui.tui.app import run_app, run_status_app

        try:
            config = ctx.obj.config(os.environ.get("TARGET_ENV"))
            (run_status_app if config.read_only else run_app)(config)  # a read-only config: the status view
        except DrError as exc:
            sys.exit(report_error(exc))

