"""One engine, thin faces: the core and the headless face never load Textual (nor the core Rich or humanize)."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import importlib, pkgutil, sys
import {first}, {package}
for module in pkgutil.walk_packages({package}.__path__, "{package}."):
    importlib.import_module(module.name)
print(" ".join(sorted(name for name in {banned} if name in sys.modules)))
"""


@pytest.mark.parametrize(("first", "package", "banned"), [
    ("drtui.core", "drtui.core", ("textual", "rich", "humanize")),
    ("drtui.cli", "drtui.headless", ("textual",)),
])
def test_package_does_not_load(first: str, package: str, banned: tuple[str, ...]) -> None:
    code = PROBE.format(first=first, package=package, banned=banned)
    done = subprocess.run([sys.executable, "-c", code],
                          capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


def test_a_restore_starts_without_psycopg_or_jinja2() -> None:
    """Importing psycopg takes 0.2-0.4 s; a restore first connects once the restored server replays WAL, so
    the command must reach its extraction without it (nor jinja2, which only a record needs)."""
    code = ("import sys, click, drtui.cli\n"
            "drtui.cli.main.get_command(click.Context(drtui.cli.main), 'restore')\n"
            "import drtui.core.runner, drtui.core.steps.pitr, drtui.core.steps.recovery, drtui.core.extract\n"
            "print(' '.join(sorted(n for n in ('psycopg', 'jinja2', 'httpx') if n in sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""
