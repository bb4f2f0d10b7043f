"""The `drtui` command: a bare `drtui` opens the wizard; every subcommand is headless.

Each runbook variable maps onto an option through click's `envvar=`, so `TARGET_ENV=staging drtui ...` and
`drtui ... --env staging` mean the same.
"""

from __future__ import annotations

import os
import sys

import click

from drtui.core.errors import DrError
from drtui.headless.common import Context, env_option, handle_errors, json_option, pass_context
from drtui.headless.output import report_error

# Re-exported for command modules: they import these from drtui.headless.common.
__all__ = ["Context", "env_option", "handle_errors", "json_option", "main", "pass_context"]


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
    from drtui.headless import verify_commands
    main.add_command(verify_commands.verify)
    main.add_command(verify_commands.drills)
    main.add_command(verify_commands.report)
    from drtui.headless import inventory_commands
    main.add_command(inventory_commands.inventory)
    main.add_command(inventory_commands.status)
    from drtui.headless import restore_commands
    restore_commands.register(main)
    from drtui.headless import drill_commands
    main.add_command(drill_commands.drill)


_register()
