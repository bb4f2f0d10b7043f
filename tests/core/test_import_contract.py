"""The import-linter contracts hold, and they break when the core reaches for a face."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(project: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(project)}
    return subprocess.run([str(LINT_IMPORTS), "--config", str(project / "pyproject.toml"), "--no-cache"],
                          cwd=project, env=env, capture_output=True, text=True, check=False, timeout=120)


def test_the_contracts_are_kept() -> None:
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_a_core_module_importing_the_tui_breaks_a_contract(tmp_path: Path) -> None:
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(ROOT / "drtui", tmp_path / "drtui", ignore=shutil.ignore_patterns("__pycache__"))
    clock = tmp_path / "drtui" / "core" / "clock.py"
    clock.write_text(clock.read_text() + "\n\ndef _face() -> None:\n    import drtui.tui.app  # noqa: F401\n")
    done = lint_imports(tmp_path)
    assert done.returncode != 0
    assert "the core imports no face" in done.stdout and "BROKEN" in done.stdout
    assert "drtui.core.clock -> drtui.tui.app" in done.stdout


def test_a_backend_importing_the_backup_sequence_breaks_the_cycle_contract(tmp_path: Path) -> None:
    """core/backup.py drives the backends; a backend reaching back for backup's names makes a cycle."""
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(ROOT / "drtui", tmp_path / "drtui", ignore=shutil.ignore_patterns("__pycache__"))
    compose = tmp_path / "drtui" / "core" / "backends" / "compose.py"
    compose.write_text(compose.read_text() + "\n\ndef _level() -> int:\n"
                       "    from drtui.core.backup import GZIP_LEVEL\n\n    return GZIP_LEVEL\n")
    done = lint_imports(tmp_path)
    assert done.returncode != 0
    assert "no import cycle in drtui BROKEN" in done.stdout
    assert "No cycles are allowed in drtui.core." in done.stdout
    assert ".backends -> .backup" in done.stdout or ".backup -> .backends" in done.stdout, done.stdout


def test_no_module_but_the_backends_branches_on_the_backend_name() -> None:
    """What differs between backends is a method or property of theirs, not an `env.backend == ...` elsewhere."""
    branch = re.compile(r"\.backend\s*(==|!=|\bin\b|\bnot in\b)")
    found = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
             for path in sorted((ROOT / "drtui").rglob("*.py")) if "backends" not in path.relative_to(ROOT).parts
             for number, line in enumerate(path.read_text().splitlines(), 1) if branch.search(line)]
    assert found == []
