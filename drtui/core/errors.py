"""Errors raised by the core. Each has a title (what went wrong) and a hint (what to do next),
which the TUI shows in a modal and the headless face prints and maps to an exit code."""

from __future__ import annotations


class DrError(Exception):
    """Base of every error the core raises on purpose."""

    exit_code = 1

    def __init__(self, title: str, hint: str = "") -> None:
        super().__init__(title)
        self.title = title
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.title}\n  hint: {self.hint}" if self.hint else self.title


class ConfigError(DrError):
    """The configuration (file, key, value) is wrong; nothing was touched."""

    exit_code = 2


class UsageError(DrError):
    """A bad argument; nothing was touched."""

    exit_code = 2


class PostgresError(DrError):
    """A PostgreSQL server or binary did not do what was asked."""


class BackupError(DrError):
    """A backup could not be made or is not whole."""
