"""The headless face reads a target with the core's `Target.parse` and adds its own flags to the hint; shown
in-process with click's CliRunner (planning stops at the target, before any server is needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from drtui.cli import main


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "drtui.toml"
    path.write_text('backup_dir = "b"\n[environments.staging]\n')
    return path


@pytest.mark.parametrize(("command", "args", "env", "words"), [
    ("pitr", ["--target-lsn", "nope"], {}, ("'nope' is not an LSN", "0/3000060", "--target-lsn")),
    ("pitr", ["--target-xid", "x1"], {}, ("'x1' is not a transaction id", "--target-xid")),
    ("pitr", ["--target-timeline", "newest"], {}, ("'newest' is not a timeline", "--target-timeline")),
    ("pitr", [], {"TARGET_TIME": " "}, ("target time is empty", "TARGET_TIME", "RECOVERY_TARGET=latest")),
    ("pitr", ["--target-time", "someday"], {}, ("'someday'", "ISO-8601", "--target-time")),
    ("pitr", ["--target-lsn", "0/1", "--target-xid", "7"], {}, ("--target-lsn and --target-xid",)),
    ("advance", ["--target-lsn", "nope"], {}, ("'nope' is not an LSN", "--target-lsn")),
])
def test_a_bad_target_is_2_and_names_the_value_and_the_flag(config: Path, command: str, args: list[str],
                                                            env: dict[str, str], words: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, ["--config", str(config), "restore", command, "--env", "staging", *args],
                                env=env)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert all(word in result.output for word in words), result.output
