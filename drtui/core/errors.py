"""Errors raised by the core. Each has a title (what went wrong), a hint (what to do next) and a kind, which
the TUI shows and the headless face maps to its exit code (`drtui.headless.output.exit_code_for`)."""

from __future__ import annotations

import enum


class ErrorKind(enum.Enum):
    FAILED = "failed"  # a step, a check or a backup did not do what was asked
    REFUSED = "refused"  # a gate or a safety check said no before anything was touched
    BAD_INPUT = "bad input"  # the config or an argument is wrong; nothing was touched


class DrError(Exception):
    """Base of every error the core raises on purpose."""

    kind = ErrorKind.FAILED

    def __init__(self, title: str, hint: str = "") -> None:
        super().__init__(title)
        self.title = title
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.title}\n  hint: {self.hint}" if self.hint else self.title


class ConfigError(DrError):
    """The configuration (file, key, value) is wrong; nothing was touched."""

    kind = ErrorKind.BAD_INPUT


class UsageError(DrError):
    """A bad argument; nothing was touched."""

    kind = ErrorKind.BAD_INPUT


class PostgresError(DrError):
    """A PostgreSQL server or binary did not do what was asked."""


class BackupError(DrError):
    """A backup could not be made or is not whole."""


class PlanError(DrError):
    """The plan cannot work with what is at hand; nothing was touched."""

    kind = ErrorKind.REFUSED
