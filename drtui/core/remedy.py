"""What to do after a run failed once the restored cluster was up, decided once from what failed, so that the
printer, the records and the TUI offer the same next step. Rolling back is offered only when the restored data
is wrong or unusable; a failed health check (the app, its readiness, archiving) is fixed where it is and checked
again with `drtui verify`: undoing a recovery whose data passed would bring the bad data back.

No psycopg here (the check names are drtui.core.checks' and drtui.core.drill's): the run record uses it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

ROLLBACK, RECHECK, UNDONE = "rollback", "recheck", "undone"
# Checks and steps whose failure means the restored data is wrong or unusable.
DATA_CHECKS = frozenset({"postgres_connect", "out_of_recovery", "sample_queries", "data_timestamp", "uploads",
                         "drill_marker", "record_counts", "created_before_target"})
DATA_STEPS = frozenset({"follow_recovery", "integrity"})
LOOK_AT = {
    "healthz": "/healthz (is the app up and connected to the database?)",
    "readyz": "/readyz (are the migrations current? run the migrate command)",
    "healthz_backup": "the dump heartbeat behind /healthz/backup (take a fresh dump)",
    "wal_archiving": "archive_mode and archive_command of the restored cluster",
    "compose_services": "the compose services (docker compose ps, and the logs of the one not running)",
    "smoke_tests": "the smoke tests' output in the run log",
    "start_app": "the start_app_command and the application's log",
}


@dataclass(frozen=True)
class Remedy:
    kind: str  # ROLLBACK: the data is wrong or unusable; RECHECK: it passed, fix and check again; UNDONE: all undone
    text: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def remedy_after_commit(environment: str, failed_step: str, failed_checks: Iterable[str],
                        preserved: str | None = None, target: str | None = None) -> Remedy:
    """The next step after `failed_step` failed with the restored cluster already up (`target`: the target
    time, ISO, that `drtui verify` checks the data against again)."""
    failed = list(dict.fromkeys(failed_checks))
    bad_data = [name for name in failed if name in DATA_CHECKS]
    if failed_step in DATA_STEPS or bad_data:
        kept = f" (kept at {preserved})" if preserved else ""
        why = f" ({', '.join(bad_data)} failed)" if bad_data else ""
        return Remedy(ROLLBACK, f"The restored data is wrong or unusable{why}: restore again to the right target, "
                                f"or put the old data back{kept} with `drtui rollback --env {environment}`")
    looks = [LOOK_AT.get(name, name) for name in (failed or [failed_step])]
    return Remedy(RECHECK, "The restored data passed its checks: do not roll back. Look at " + "; ".join(looks)
                  + f", then check again with `drtui verify --env {environment}"
                  + (f" --target-time {target}`" if target else "`"))


UNDONE_REMEDY = Remedy(UNDONE, "nothing to roll back: the run was undone and the old data directory is in place")
