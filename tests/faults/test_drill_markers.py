"""Issue 11 point 10: production already has a `dr_drill_markers` table of another shape (the runbook's shell
drill may have left one); the drill adapts instead of failing with a raw PostgreSQL error."""

from __future__ import annotations

import json

from drtui.core import backup, drill_source
from drtui.core.clock import SystemClock
from drtui.core.postgres import connect, query
from drtui.sandbox import Sandbox
from tests.conftest import run_drtui
from tests.faults.conftest import assert_message, leftovers

SHELL_TABLE = ("create table dr_drill_markers (id serial primary key, marker_name text not null, "
               "created_at timestamp default now())")


def test_the_marker_table_shape_is_judged_by_what_the_insert_needs(shared_sandbox: Sandbox) -> None:
    with connect(shared_sandbox.env("production")) as conn, conn.transaction(force_rollback=True):
        assert drill_source.marker_shape_problem(conn, "no_such_marker_table") is None
        conn.execute("create table m_shell (id serial primary key, marker_name text not null, "
                     "created_at timestamptz default now(), drill_id text)")
        assert drill_source.marker_shape_problem(conn, "m_shell") == (
            "column marker_name must be filled and the drill does not know it")
        conn.execute("create table m_naive (id serial, drill_id text, created_at timestamp default now())")
        assert drill_source.marker_shape_problem(conn, "m_naive") == (
            "column created_at is timestamp without time zone, not timestamp with time zone")
        conn.execute("create table m_ok (id bigint generated always as identity, drill_id varchar(80) not null, "
                     "created_at timestamptz not null default now(), note text)")
        assert drill_source.marker_shape_problem(conn, "m_ok") is None


def test_a_drill_over_a_shell_drills_marker_table_uses_its_own(sandbox: Sandbox) -> None:
    backup.dump(sandbox.config(), sandbox.env("production"), SystemClock())
    production = sandbox.env("production")
    with connect(production) as conn:
        conn.execute(SHELL_TABLE)
        conn.execute("insert into dr_drill_markers (marker_name) values ('shell drill 2025-10')")
    result = run_drtui("drill", "--json", config=sandbox.config_path,
                       env={"TARGET_ENV": "staging", "CONFIRM_DRILL": "YES"}, timeout=300)
    assert_message(result, "dr_drill_markers exists in another shape", "(no drill_id column)",
                   "the marker goes into drtui_drill_markers", code=0)
    summary = json.loads(result.stdout)
    drill_id = summary["marker"]["drill_id"]
    assert summary["marker"]["table"] == "drtui_drill_markers"
    assert any(c["name"] == "drill_marker" and c["outcome"] == "passed" for c in summary["checks"])
    # The marker is in staging's restored copy; the shell drill's table and row are as they were.
    assert query(sandbox.env("staging"), "select count(*) from drtui_drill_markers where drill_id = %s",
                 (drill_id,))[0][0] == 1
    assert query(production, "select marker_name from dr_drill_markers") == [("shell drill 2025-10",)]
    assert [c[0] for c in query(production, "select attname from pg_attribute where attrelid = "
                                "'dr_drill_markers'::regclass and attnum > 0 order by attnum")] == [
        "id", "marker_name", "created_at"]
    assert leftovers(sandbox) == []
