"""The recovery target from the CLI's options: one of --recovery-target, --target-time, --target-lsn,
--target-xid, --before-xid, --target-name (none: latest), read by the core's `Target.parse`, its errors told
in flags."""

from __future__ import annotations

from drtui.core.clock import Clock
from drtui.core.errors import UsageError
from drtui.core.planning import Target, TargetError

FLAG_HINTS = {
    "time": "give it with --target-time (TARGET_TIME), or to recover all archived WAL say so: "
            "RECOVERY_TARGET=latest (and leave TARGET_TIME unset)",
    "lsn": "give it with --target-lsn",
    "xid": "give it with --target-xid or --before-xid",
    "name": "give it with --target-name",
}
KIND_HINT = "--recovery-target (RECOVERY_TARGET) is immediate or latest; for a time use --target-time (TARGET_TIME)"
TIMELINE_HINT = "give it with --target-timeline"


def make_target(kind: str | None = None, time_text: str | None = None, lsn: str | None = None,
                xid: str | None = None, name: str | None = None, *, exclusive: bool = False,
                timeline: str | None = None, clock: Clock, before_xid: str | None = None) -> Target:
    """One Target from the CLI's options; exactly one kind may be given (none: latest). --before-xid N is
    --target-xid N --exclusive."""
    given = [flag for flag, value in (("--recovery-target", kind), ("--target-time", time_text),
                                      ("--target-lsn", lsn), ("--target-xid", xid), ("--target-name", name),
                                      ("--before-xid", before_xid)) if value]
    if len(given) > 1:
        raise UsageError(f"choose one recovery target, not {' and '.join(given)}",
                         "give a time, an LSN, an xid, a restore point name, or immediate/latest")
    if before_xid:
        xid, exclusive = before_xid, True
    chosen, text = next(((k, v) for k, v in (("lsn", lsn), ("xid", xid), ("name", name)) if v),
                        (kind or "latest", None))
    if time_text is not None:  # even empty: an empty TARGET_TIME is refused, not read as latest
        chosen, text = "time", time_text
    try:
        return Target.parse(chosen, text, clock, inclusive=not exclusive, timeline=timeline or "latest")
    except TargetError as exc:
        wording = {"kind": KIND_HINT, "timeline": TIMELINE_HINT}.get(exc.part) or FLAG_HINTS.get(chosen, KIND_HINT)
        raise UsageError(exc.title, f"{exc.hint}; {wording}") from None
