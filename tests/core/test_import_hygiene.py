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
