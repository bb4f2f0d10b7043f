"""Where a restored server's recovery is (`recovery_state`), in the words promote, advance (drtui.core.paused)
and status use, and what to do about it."""

from __future__ import annotations

from dataclasses import dataclass

from drtui.core.backends.base import Backend, RecoveryStatus
from drtui.core.clock import isoformat
from drtui.core.config import Environment
from drtui.core.errors import DrError, ErrorKind
from drtui.core.models import format_lsn


class NotPaused(DrError):
    """There is no recovery waiting for a promotion."""

    kind = ErrorKind.REFUSED


SIGNAL_FILES = ("recovery.signal", "standby.signal")


@dataclass(frozen=True)
class RecoveryState:
    """Where an environment's server is, in the words promote, advance and status use."""

    kind: str  # "paused", "replaying", "not in recovery", "starting", "stopped in recovery", "crashed", "down"
    status: RecoveryStatus | None = None
    signal: str | None = None  # the signal file left in a data directory whose server is down

    @property
    def in_recovery(self) -> bool:
        return self.kind not in ("not in recovery", "down")

    def describe(self) -> str:
        match self.kind:
            case "paused":
                return f"running, paused in recovery at {position(self.status)}"
            case "replaying":
                return f"running, still replaying WAL (at {position(self.status)}), not paused yet"
            case "not in recovery":
                return "running and not in recovery"
            case "starting":
                return "starting: it does not accept connections yet"
            case "stopped in recovery":
                return f"not running: it was stopped in the middle of a recovery ({self.signal} is there)"
            case "crashed":
                return (f"not running: it stopped unexpectedly in the middle of a recovery (postmaster.pid is "
                        f"left behind, {self.signal} is there); the data directory is half-recovered")
        return "not running, and not in recovery"


def position(status: RecoveryStatus | None) -> str:
    """'LSN 0/5000060, last replayed transaction 2026-…' (what is known of it)."""
    if status is None:
        return "an unknown position"
    lsn = f"LSN {format_lsn(status.replay_lsn)}" if status.replay_lsn is not None else "an unknown LSN"
    when = isoformat(status.replay_time) if status.replay_time else "unknown"
    return f"{lsn}, last replayed transaction {when}"


def recovery_state(backend: Backend) -> RecoveryState:
    """Ask the server; when it does not answer, read its data directory (a signal file: down mid-recovery)."""
    status = backend.recovery_status()
    if status is not None:
        if not status.in_recovery:
            return RecoveryState("not in recovery", status)
        return RecoveryState("paused" if status.paused else "replaying", status)
    if backend.server_alive():
        return RecoveryState("starting")
    data_dir = backend.data_dir
    signal = next((name for name in SIGNAL_FILES if data_dir.is_absolute() and (data_dir / name).exists()), None)
    if signal is None:
        return RecoveryState("down")
    return RecoveryState("crashed" if (data_dir / "postmaster.pid").exists() else "stopped in recovery",
                         signal=signal)


def pause_hint(env_name: str) -> str:
    """What to do with a recovery paused at its target."""
    return (f"inspect it read-only, then `drtui restore promote --env {env_name}` to end recovery, or "
            f"`drtui restore advance --env {env_name} --target-time T` to replay on to a later target")


def next_step(state: RecoveryState, env: Environment, backend: Backend, verb: str) -> str:
    """What the operator does about the server, wherever it is."""
    match state.kind:
        case "paused":
            return pause_hint(env.name)
        case "replaying":
            return f"wait until it pauses at its target (`drtui status` shows it), then {verb}"
        case "not in recovery":
            return (f"it was promoted already, or was not restored with --pause-at-target; check it with "
                    f"`drtui verify --env {env.name}`, or put the previous data back with "
                    f"`drtui rollback --env {env.name}`")
        case "starting":
            return f"wait a moment and {verb} again; the server log is {backend.server_log()}"
        case "stopped in recovery" | "crashed":
            return (f"start it again (as {env.os_user}: {env.pg_bin / 'pg_ctl'} start -D {backend.data_dir} "
                    f"-l {backend.server_log()}): it replays to its recovery target and pauses there; then "
                    f"promote or advance; or put the previous data back with `drtui rollback --env {env.name}`")
    return f"start it; there is nothing to {verb}"


def paused_status(backend: Backend, env: Environment, verb: str) -> RecoveryStatus:
    state = recovery_state(backend)
    if state.kind != "paused":
        nothing = f": there is nothing to {verb}" if not state.in_recovery else f": it cannot {verb} now"
        raise NotPaused(f"PostgreSQL of {env.name!r} is {state.describe()}{nothing}",
                        next_step(state, env, backend, verb))
    assert state.status
    return state.status
