"""What every headless command shares: the config option's context, error handling and common options."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any

import click

from drtui.core.config import Config, load_config
from drtui.core.errors import ConfigError, DrError, UsageError
from drtui.headless.output import report_error


class Context:
    """The `--config` options and the loaded config with the runbook's variables applied. Several configs make a
    fleet, which only `drtui status` reads."""

    def __init__(self, config_options: tuple[str, ...] = ()) -> None:
        self.config_options = config_options

    def config(self, env_name: str | None = None) -> Config:
        if len(self.config_options) > 1:
            raise UsageError(f"{len(self.config_options)} configs given ({', '.join(self.config_options)}): "
                             "only `drtui status` reads a fleet", "give one --config (or DRTUI_CONFIG)")
        first = self.config_options[0] if self.config_options else None
        return load_config(first).with_overrides(env_name, os.environ)

    def configs(self) -> list[Config]:
        """Every config given (a fleet), or the one found as usual."""
        if len(self.config_options) < 2:
            return [self.config()]
        return [load_config(option).with_overrides(None, os.environ) for option in self.config_options]


pass_context = click.make_pass_decorator(Context)


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a DrError into its message on stderr and its exit code, and a file drtui may not open (a non-root
    user, say) into a refusal that names it; never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except DrError as exc:
            sys.exit(report_error(exc))
        except PermissionError as exc:
            sys.exit(report_error(ConfigError(
                f"{exc.filename or 'a file'}: permission denied",
                "run drtui as the user that owns state_dir and the data directories (root, or the os_user), "
                "or point state_dir in drtui.toml at a folder you can write")))

    return wrapper


env_option = click.option("--env", "env_name", envvar="TARGET_ENV", default=None,
                          help="Environment from the config (TARGET_ENV); default: production.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print a machine-readable result.")
run_id_option = click.option("--run-id", default=None, hidden=True,
                             help="The run id (the wizard picks it to follow the journal).")


def record_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--operator and --reviewer for a run's record (DRILL_OPERATOR, DRILL_REVIEWER); default: the OS user
    operated, no reviewer recorded."""
    func = click.option("--reviewer", envvar="DRILL_REVIEWER", default="not recorded", show_default=True,
                        help="Secondary reviewer for the record (DRILL_REVIEWER).")(func)
    return click.option("--operator", envvar="DRILL_OPERATOR", default=None,
                        help="Primary operator for the record (DRILL_OPERATOR); default: the OS user.")(func)


class LocationParam(click.ParamType):
    """A path, or an s3:// URL kept whole as an S3Url (click.Path would squeeze it into `s3:/bucket/key`)."""

    name = "path-or-s3-url"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from drtui.core.inventory.remote import as_location

        try:
            return as_location(value)
        except ValueError as exc:
            self.fail(f"{value!r}: {exc}", param, ctx)


LOCATION = LocationParam()
