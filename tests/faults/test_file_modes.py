"""Files only their owners can read: every file and folder drtui writes in a real world (backups, heartbeats,
journals, locks, the inventory cache, pre-restore dumps, records) is closed to other local users, and its
backups belong to the configured backup_group."""

from __future__ import annotations

import dataclasses
import grp
import json
import os
import stat
from pathlib import Path

from drtui.core.files import UMASK
from drtui.core.postgres import LocalServer, ServerState
from drtui.sandbox import Sandbox
from tests.conftest import run_drtui
from tests.faults.conftest import assert_message

BACKUP_GROUP = "daemon"  # a group every Debian host has, other than root's own


def _tree(*roots: Path) -> dict[Path, int]:
    """Every path under the roots (the roots too), with its mode."""
    found: dict[Path, int] = {}
    for root in roots:
        if not root.exists():
            continue
        found[root] = root.lstat().st_mode
        for folder, dirs, files in os.walk(root):
            for name in dirs + files:
                path = Path(folder, name)
                found[path] = path.lstat().st_mode
    return found


def test_nothing_drtui_writes_is_readable_by_other_users(sandbox: Sandbox, open_tmp: Path) -> None:
    config = sandbox.config_path
    config.write_text(f'backup_group = "{BACKUP_GROUP}"\n' + config.read_text())
    loaded = sandbox.config()
    sync_target = open_tmp / "offsite"
    sync_target.mkdir(mode=0o750)
    roots = (loaded.backup_dir, loaded.state_dir, loaded.report_dir, loaded.wal_sync_heartbeat.parent, sync_target)
    made_by_the_sandbox = set(_tree(*roots))

    status = run_drtui("status", config=config)
    assert f"{loaded.backup_dir}: backup_dir is open to every local user (mode 0755)" in status.stdout, status.output
    assert "chmod o-rwx" in status.stdout
    for args, env in ((("backup", "dump"), {}), (("backup", "base"), {}),
                      (("backup", "wal-sync"), {"WAL_SYNC_TARGET": str(sync_target)}), (("backup", "verify"), {}),
                      (("inventory",), {})):
        done = run_drtui(*args, config=config, env=env)
        assert done.exit_code == 0, (args, done.output)
    restored = run_drtui("restore", "staging", "--json", config=config,
                         env={"TARGET_ENV": "staging", "CONFIRM_STAGING_RESTORE": "YES"})
    assert restored.exit_code == 0, restored.output
    reported = run_drtui("report", config=config)
    assert reported.exit_code == 0, reported.output

    written = {path: mode for path, mode in _tree(*roots).items() if path not in made_by_the_sandbox}
    kinds = {p.parent.name if p.parent != loaded.backup_dir else p.name.split("_")[0] for p in written}
    assert {"cleaning", "uploads", "basebackup", "wal", "LAST", "runs", "pre_restore"} <= kinds, sorted(kinds)
    assert loaded.state_dir / "locks" in written and loaded.wal_sync_heartbeat in written
    assert Path(json.loads(restored.stdout)["journal"]) in written
    assert Path(reported.stdout.strip()) in written
    open_to_others = {str(p): f"{stat.S_IMODE(m):04o}" for p, m in written.items() if m & 0o007}
    assert open_to_others == {}
    gid = grp.getgrnam(BACKUP_GROUP).gr_gid
    backups = [p for p in [*loaded.backup_dir.iterdir(), *sync_target.iterdir(), loaded.wal_sync_heartbeat]
               if p in written and p.is_file()]
    assert len(backups) >= 6  # dump, uploads, base backup, WAL tarball and its copy, two heartbeats
    assert {(str(p), f"{stat.S_IMODE(p.stat().st_mode):04o}", p.stat().st_gid) for p in backups} == {
        (str(p), "0640", gid) for p in backups}

    loaded.backup_dir.chmod(0o750)
    closed = run_drtui("status", config=config)
    assert "open to every local user" not in closed.stdout, closed.output


def test_a_backup_group_that_does_not_exist_is_refused(open_tmp: Path) -> None:
    config = open_tmp / "drtui.toml"
    config.write_text('backup_group = "no-such-group-here"\n[environments.production]\nport = 5432\n')
    result = run_drtui("backup", "dump", config=config)
    assert_message(result, str(config), "backup_group", "no-such-group-here", "existing group", code=2)
    assert sorted(p.name for p in open_tmp.iterdir()) == ["drtui.toml"]


def test_a_server_log_in_a_folder_drtui_creates_is_still_writable_by_postgres(sandbox: Sandbox) -> None:
    """drtui's umask closes its folders to others; a server_log folder it creates must still let the cluster's
    OS user write the log, or PostgreSQL would not start after a restore."""
    env = dataclasses.replace(sandbox.env("staging"), server_log=sandbox.root / "new-logs" / "staging.log")
    server = LocalServer.for_environment(env)
    server.stop()
    old_umask = os.umask(UMASK)
    try:
        server.start()
    finally:
        os.umask(old_umask)
    assert server.state() is ServerState.RUNNING
    assert env.server_log is not None and env.server_log.stat().st_size > 0
    assert not env.server_log.parent.stat().st_mode & 0o007
