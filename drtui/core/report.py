"""Records of restores and drills: the runbook's *DR drill record*, *PITR DR drill record* and the automated
drill report, rendered with Jinja2 from the events of a run's journal.

The journal is the only input about the run (what the plan was, which step ran when, what each check found),
so a record can be written by the run itself, by a face after it, or again later from the same journal.
Python turns the events into plain, already formatted values; the templates only lay them out, so a user's
templates folder can restyle a record without repeating any logic. Each report gets a small JSON sidecar
that `drtui drills` reads back.

A check counts as pre-restore health when it ran inside a step whose name starts with "pre" (the drill's
`pre_health`), or says so itself with `data["phase"] = "pre"`; every other check describes the result, and only
those decide PASS or FAIL together with the run's own verdict.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jinja2

import drtui
from drtui.core.checks import (
    ARCHIVING,
    BACKUP,
    CONNECT,
    DATA_TIME,
    FAILED,
    HEALTHZ,
    PASSED,
    READYZ,
    RECOVERY,
    SAMPLES,
    SERVICES,
    SKIPPED,
    UPLOADS,
    RpoMeasure,
)
from drtui.core.clock import isoformat, stamp
from drtui.core.config import Config, Objectives
from drtui.core.events import (
    CheckCompleted,
    Event,
)
from drtui.core.files import atomic_path
from drtui.core.journal import read_events
from drtui.core.new_timeline import fresh_backup_note
from drtui.core.prediction import achieved_seconds
from drtui.core.run_record import ReportError, RunRecord, StepState, as_datetime, record_from_events
from drtui.core.secrets import redact_data

# The runbook's record templates, field by field (DR_RUNBOOK.md, "DR Drill Record Template" and
# "PITR DR Drill Record Template"); a filled record holds each of these lines with a value.
DR_DRILL_RECORD_FIELDS = (
    "Date (UTC):", "Primary operator:", "Secondary reviewer:", "Environment:", "Backup file:", "Uploads archive:",
    "Start time (UTC):", "End time (UTC):", "Duration (minutes):", "RTO target (minutes):",
    "RTO achieved (minutes):", "RPO target (hours):", "RPO achieved (hours):", "Steps followed:",
    "  - Copy backups", "  - Run restore script", "  - Run validations", "Validation results:", "  - /healthz:",
    "  - /readyz:", "  - /healthz/backup:", "  - Sample queries:", "  - Uploads check:", "Issues encountered:",
    "Follow-up actions:",
)
PITR_DRILL_RECORD_FIELDS = (
    "Date (UTC):", "Primary operator:", "Secondary reviewer:", "Environment:", "Recovery target type:",
    "Target time (if applicable):", "Base backup file:", "WAL archive file:", "Start time (UTC):",
    "End time (UTC):", "Duration (minutes):", "RTO target (minutes):", "RTO achieved (minutes):",
    "RPO target (minutes):", "RPO achieved (minutes):", "Verification results:", "  - /healthz:", "  - /readyz:",
    "  - Data timestamp check:", "Issues encountered:", "Follow-up actions:",
)

# journey -> (template, report file prefix)
TEMPLATES = {
    "staging": ("dr_drill_record.md.j2", "dr_drill_record"),
    "pitr": ("pitr_drill_record.md.j2", "pitr_record"),
    "drill": ("pitr_drill_report.md.j2", "pitr_drill"),
}
HEALTH_CHECKS = (CONNECT, RECOVERY, ARCHIVING, HEALTHZ, READYZ, BACKUP, SERVICES)
QUARTER = timedelta(days=92)
SIDECAR_SUFFIX = ".json"
NOT_RUN = "not run"
NOT_MEASURED = "not measured"


def packaged_templates_dir() -> Path:
    """report_templates/ inside the installed wheel, or at the root of a development checkout."""
    package = Path(drtui.__file__).parent
    installed = package / "report_templates"
    return installed if installed.is_dir() else package.parent / "report_templates"


# -- troubleshooting ------------------------------------------------------------------------------
def troubleshooting(record: RunRecord, config: Config) -> list[str]:
    """What to look at for the step (or check) that failed: the runbook's notes, made concrete."""
    if record.ok is not False and not record.failed_checks:
        return []
    env = config.environments.get(record.environment)
    advice: list[str] = []
    failed = record.failed_step
    names = {check.name for check in record.failed_checks}
    if failed:
        advice.append(f"Step '{failed.title}' failed: {_one_line(failed.error)}"
                      + (f" (hint: {_one_line(failed.hint)})" if failed.hint else ""))
        lowered = failed.name.lower()
        if "extract" in lowered or "base" in lowered:
            advice.append("The base backup could not be unpacked: check it with `drtui backup verify` or "
                          "`pg_verifybackup`, and pick another with BASE_BACKUP.")
        if "wal" in lowered or "recover" in lowered or "start" in lowered:
            log = env.server_log if env and env.server_log else None
            advice.append(f"Read the PostgreSQL server log{f' ({log})' if log else ''}: the recovery's last lines "
                          "say why it stopped (target before the consistent point, missing WAL, restore_command).")
        if lowered in ("preflight", "gates", "plan") or lowered.startswith("pre_health"):
            advice.append("Nothing was changed: the run stopped before it touched the data directory.")
    if READYZ in names:
        command = env.migrate_command if env and env.migrate_command else None
        advice.append("/readyz is not healthy: if the migrations are not current, run "
                      + (f"the migrate command `{command}`" if command else
                         "`docker compose exec -T api alembic upgrade head` (or set migrate_command)")
                      + " and re-check readiness with `drtui verify`.")
    if names & {CONNECT, RECOVERY} and not failed:
        advice.append("PostgreSQL is not serving: read the server log"
                      + (f" ({env.server_log})" if env and env.server_log else "") + ".")
    if record.summary.get("hint"):
        advice.append(f"The engine says: {_one_line(record.summary['hint'])}")
    advice.extend(_rollback_advice(record, env))
    advice.append("Escalate any RTO/RPO miss to the incident log and correct the runbook.")
    return advice


def _rollback_advice(record: RunRecord, env: Any) -> list[str]:
    if record.remedy and record.remedy.get("kind") != "rollback":
        return []  # the restored data passed: the engine's hint says what to fix and check again, not to undo
    preserved = record.summary.get("preserved")
    data_dir = record.plan.get("data_dir") or (str(env.data_dir) if env else None)
    rollback = (f"`drtui rollback --env {record.environment}` puts it back (the failed copy is kept aside, "
                "never deleted)")
    names = {step.name: step for step in record.steps}
    if preserved:
        return [f"The pre-restore data is preserved at {preserved}; {rollback}."]
    if "preserve" in names and names["preserve"].outcome == "done":
        return [f"The pre-restore data is preserved at {data_dir}.pre_pitr_*; {rollback}."]
    if "preserve" in (record.plan.get("steps") or []) and "preserve" not in names:
        return [f"The run stopped before the data directory was moved: {data_dir} is as it was."]
    if data_dir:
        return [f"If the run got as far as moving the data directory, the pre-restore data is preserved at "
                f"{data_dir}.pre_pitr_*; {rollback}."]
    return []


# -- rendering ------------------------------------------------------------------------------------
def _one_line(text: Any) -> str:
    return re.sub(r"\s+", " ", str(text)).strip()


def _minutes(seconds: float | None) -> str:
    return f"{seconds / 60:.2f}" if seconds is not None else NOT_MEASURED


def _hours(seconds: float | None) -> str:
    return f"{seconds / 3600:.2f}" if seconds is not None else NOT_MEASURED


def _check_line(check: CheckCompleted | None) -> str:
    if check is None:
        return NOT_RUN
    word = {PASSED: "PASS", FAILED: "FAIL", SKIPPED: "SKIP"}.get(check.outcome, check.outcome.upper())
    return f"{word} — {_one_line(check.detail)}" if check.detail else word


def _objectives(journey: str, objectives: Objectives) -> tuple[timedelta, timedelta]:
    if journey == "staging":
        return objectives.staging_rto, objectives.staging_rpo
    return objectives.pitr_rto, objectives.pitr_rpo


def build_context(record: RunRecord, config: Config, *, operator: str, reviewer: str,
                  rpo: RpoMeasure | dict[str, Any] | None = None, journal: Path | None = None) -> dict[str, Any]:
    """Everything a template shows, as ready-to-print strings (and the raw record for custom templates)."""
    rto_target, rpo_target = _objectives(record.journey, config.objectives)
    rpo_data = rpo_measured(record, rpo)
    rpo_seconds = rpo_data.get("rpo_seconds")
    plan = record.plan
    base = plan.get("base_backup")
    target = plan.get("target") if isinstance(plan.get("target"), dict) else {}
    end = record.finished_at
    duration = (end - record.started_at).total_seconds() if end else None
    post = {check.name: check for check in record.phase_checks("post")}
    pre = record.phase_checks("pre")
    advice = troubleshooting(record, config)
    follow_ups = [_one_line(c.data["follow_up"]) for c in post.values() if c.data.get("follow_up")]
    follow_ups += [note] if (note := fresh_backup_note(config, record.environment, record.journey, record.ok,
                                                       bool(record.summary.get("paused_at_target")))) else []
    issues = [f"step '{s.title}' failed: {_one_line(s.error)}" for s in record.steps if s.outcome == "failed"]
    issues += [f"check {c.data.get('title', c.name)} failed: {_one_line(c.detail)}" for c in record.failed_checks]
    if record.ok is None:
        issues.append("the run has not finished (no run_finished event in the journal)")
    passed = record.passed
    next_due = isoformat(record.started_at + QUARTER)[:10]
    env = config.environments.get(record.environment)
    counts = {PASSED: 0, FAILED: 0, SKIPPED: 0}
    for check in record.checks:
        counts[check.outcome] = counts.get(check.outcome, 0) + 1
    done_steps = sum(1 for s in record.steps if s.outcome == "done")
    return redact_data({  # the record comes from the journal, masked already; the config's values do not
        "record": record,
        "result": "PASS" if passed else "FAIL",
        "passed": passed,
        "run_id": record.run_id,
        "journey": record.journey,
        "journal": str(journal) if journal else "",
        "date": isoformat(record.started_at)[:10],
        "operator": operator,
        "reviewer": reviewer,
        "environment": record.environment,
        "backup_file": str((base or {}).get("path") if isinstance(base, dict) else base or
                           plan.get("dump_file") or plan.get("backup_file") or "none"),
        "uploads_archive": str(plan.get("uploads_archive") or "none"),
        "wal_archive": str(plan.get("wal_source") or plan.get("wal_archive") or "none"),
        "target_type": target.get("kind") or plan.get("recovery_target") or "latest",
        "target_time": _target_time(target, record.recovered_to),
        "recovered_to": isoformat(record.recovered_to) if record.recovered_to else "not reported",
        "start_time": isoformat(record.started_at),
        "end_time": isoformat(end) if end else "not finished",
        "duration_minutes": _minutes(duration),
        "rto_target_minutes": f"{rto_target.total_seconds() / 60:g}",
        "rto_achieved_minutes": _minutes(record.rto_seconds),
        # a failed run meets no objective, whatever its clock read
        "rto_met": passed and record.rto_seconds is not None and record.rto_seconds <= rto_target.total_seconds(),
        "rpo_target_minutes": f"{rpo_target.total_seconds() / 60:g}",
        "rpo_target_hours": f"{rpo_target.total_seconds() / 3600:g}",
        "rpo_achieved_minutes": _minutes(rpo_seconds),
        "rpo_achieved_hours": _hours(rpo_seconds),
        "rpo_met": passed and rpo_seconds is not None and rpo_seconds <= rpo_target.total_seconds(),
        "rto_cell": f"{_minutes(record.rto_seconds)} min" if record.rto_seconds is not None else NOT_MEASURED,
        "rpo_target_cell": (f"{rpo_target.total_seconds() / 3600:g} h" if record.journey == "staging"
                            else f"{rpo_target.total_seconds() / 60:g} min"),
        "rpo_cell": (NOT_MEASURED if rpo_seconds is None else f"{_hours(rpo_seconds)} h"
                     if record.journey == "staging" else f"{_minutes(rpo_seconds)} min"),
        "rpo_basis": _rpo_basis(rpo_data),
        "rpo_seconds": rpo_seconds,
        "healthz": _check_line(post.get(HEALTHZ)),
        "readyz": _check_line(post.get(READYZ)),
        "healthz_backup": _check_line(post.get(BACKUP)),
        "sample_queries": _check_line(post.get(SAMPLES)),
        "uploads_check": _check_line(post.get(UPLOADS)),
        "data_timestamp": _check_line(post.get(DATA_TIME)),
        "copy_backups": (f"artifacts read from {config.backup_dir}" if record.steps else NOT_RUN),
        "restore_script": (f"drtui {record.journey} run {record.run_id}: {done_steps} of {len(record.steps)} steps "
                           "done" + (f", failed at '{record.failed_step.title}'" if record.failed_step else "")),
        "validations": (f"{counts[PASSED]} passed, {counts[FAILED]} failed, {counts[SKIPPED]} skipped"
                        if record.checks else NOT_RUN),
        "issues": "; ".join(issues) if issues else "none",
        "follow_up": ("; ".join(line.rstrip(".") for line in advice + follow_ups) if advice or follow_ups
                      else f"none; next drill due by {next_due}"),
        "troubleshooting": advice,
        "next_due": next_due,
        "steps": [_step_row(i, s) for i, s in enumerate(record.steps, 1)],
        "pre_checks": [_check_row(c) for c in pre],
        "health_checks": [_check_row(c) for c in post.values() if c.name in HEALTH_CHECKS],
        "integrity_checks": [_check_row(c) for c in post.values() if c.name not in HEALTH_CHECKS],
        "counts": counts,
        "configuration": _configuration(record, config, env),
        "prediction": _prediction(record),
    })


def _target_time(target: dict[str, Any], recovered_to: datetime | None) -> str:
    kind = target.get("kind") or "latest"
    moment = as_datetime(target.get("time")) or (recovered_to if kind == "time" else None)
    return isoformat(moment) if moment else f"n/a ({kind})"


def rpo_measured(record: RunRecord, rpo: RpoMeasure | dict[str, Any] | None = None) -> dict[str, Any]:
    """The RPO achieved: as measured on the cluster when given (checks.measure_rpo), else from the journal.

    From the journal, the last commit is the run's `recovered_to`: the server log's last completed transaction
    after a PITR, the dump's time after a dump restore. It is set against the stated time of failure (the
    incident start), else the recovery target time, else the start of the run, as if the failure were then.
    """
    if isinstance(rpo, RpoMeasure):
        return rpo.as_dict()
    if rpo or record.summary.get("rpo"):
        return dict(rpo or record.summary["rpo"])
    last = record.recovered_to
    if last is None:
        return {}
    target = record.plan.get("target") if isinstance(record.plan.get("target"), dict) else {}
    failure = as_datetime(record.plan.get("incident_start"))
    target_time = as_datetime(target.get("time")) if target.get("kind") == "time" else None
    reference, against = ((failure, "failure_time") if failure else (target_time, "target") if target_time
                          else (record.started_at, "run_start"))
    dump = record.journey == "staging"
    return {"last_commit": last.isoformat(), "source": "dump_time" if dump else "journal",
            "reason": ("the dump's timestamp: everything committed before it is in the dump" if dump else
                       "the last completed transaction the recovery replayed (the server log, in the journal)"),
            "target": target_time.isoformat() if target_time else None,
            "failure_time": failure.isoformat() if failure else None,
            "rpo_seconds": max((reference - last).total_seconds(), 0.0), "against": against}


def _rpo_basis(rpo: dict[str, Any]) -> str:
    if not rpo:
        return NOT_MEASURED
    against = {"failure_time": "the stated time of failure", "target": "the recovery target",
               "run_start": "the start of the run (no target time or time of failure stated)"}.get(
        rpo.get("against") or "", "nothing (no target or failure time)")
    last = rpo.get("last_commit")
    return (f"last commit {isoformat(as_datetime(last)) if last else 'unknown'} against {against}; "
            f"source: {rpo.get('reason')}")


def _step_row(number: int, step: StepState) -> dict[str, str]:
    return {"number": str(number), "name": step.name, "title": step.title, "started": isoformat(step.started_at),
            "finished": isoformat(step.finished_at) if step.finished_at else "-",
            "seconds": f"{step.seconds:.1f}" if step.seconds is not None else "-",
            "outcome": {"done": "✔ done", "failed": "✘ failed", "skipped": "– skipped"}.get(step.outcome,
                                                                                          "● " + step.outcome),
            "error": _one_line(step.error), "hint": _one_line(step.hint)}


def _check_row(check: CheckCompleted) -> dict[str, str]:
    return {"name": check.name, "title": str(check.data.get("title", check.name)), "at": isoformat(check.at),
            "result": _check_line(check).split(" — ")[0], "detail": _one_line(check.detail)}


def _configuration(record: RunRecord, config: Config, env: Any) -> list[tuple[str, str]]:
    plan = record.plan
    rows = [("TARGET_ENV", record.environment),
            ("Journey", record.journey),
            ("Run", record.run_id),
            ("Config", config.source),
            ("Data directory", str(plan.get("data_dir") or (env.data_dir if env else "unknown"))),
            ("API_BASE_URL", (env.api_base_url if env else None) or "not configured"),
            ("DRILL_REPORT_DIR", str(config.report_dir))]
    for key in ("skip_backup", "pause_at_target", "incident_start", "marker", "random_target", "before_xid"):
        if plan.get(key) not in (None, "", False):
            rows.append((key, str(plan[key])))
    return rows


def _prediction(record: RunRecord) -> str:
    """The plan's predicted duration against the one achieved ('' when the plan predicted none)."""
    plan = record.plan
    if not plan.get("predicted_seconds"):
        return ""
    text = f"{plan['predicted_seconds']:.0f} s ({plan.get('prediction_basis') or 'built-in rates'})"
    if record.finished_at is None:
        return text
    took = achieved_seconds(record.journey, plan, {s.name: s.seconds for s in record.steps if s.seconds is not None},
                            (record.finished_at - record.started_at).total_seconds())
    return text + f"; the {'restore' if record.journey == 'drill' else 'run'} took {took:.0f} s"


def _environment(templates_dir: Path | None) -> jinja2.Environment:
    folders = [str(p) for p in (templates_dir, packaged_templates_dir()) if p]
    return jinja2.Environment(loader=jinja2.FileSystemLoader(folders), undefined=jinja2.StrictUndefined,
                              trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, autoescape=False)


def render(record: RunRecord, config: Config, *, operator: str, reviewer: str,
           rpo: RpoMeasure | dict[str, Any] | None = None, template: str | None = None,
           templates_dir: Path | None = None, journal: Path | None = None) -> str:
    """A record of the run as Markdown (the journey's template unless one is named)."""
    context = build_context(record, config, operator=operator, reviewer=reviewer, rpo=rpo, journal=journal)
    return _render(context, template or _template_for(record.journey), templates_dir or config.templates_dir)


def _render(context: dict[str, Any], name: str, templates_dir: Path | None) -> str:
    try:
        return _environment(templates_dir).get_template(name).render(context)
    except jinja2.TemplateNotFound as exc:
        raise ReportError(f"report template {exc.name!r} not found",
                          f"look in {templates_dir or packaged_templates_dir()}") from exc
    except jinja2.TemplateError as exc:
        raise ReportError(f"report template {name!r} failed: {exc}", "fix the template named") from exc


def _template_for(journey: str) -> str:
    if journey not in TEMPLATES:
        raise ReportError(f"no record template for a {journey!r} run",
                          f"records exist for: {', '.join(sorted(TEMPLATES))}")
    return TEMPLATES[journey][0]


def write_report(config: Config, events: Sequence[Event] | Path, *, operator: str, reviewer: str,
                 rpo: RpoMeasure | dict[str, Any] | None = None, template: str | None = None,
                 templates_dir: Path | None = None) -> Path:
    """Render the run's record into config.report_dir (atomically, never overwriting), with a JSON sidecar
    for `drtui drills`; `events` is the run's events or its journal's path."""
    journal = events if isinstance(events, Path) else None
    record = record_from_events(read_events(events) if isinstance(events, Path) else events)
    context = build_context(record, config, operator=operator, reviewer=reviewer, rpo=rpo, journal=journal)
    text = _render(context, template or _template_for(record.journey), templates_dir or config.templates_dir)
    prefix = TEMPLATES.get(record.journey, (None, record.journey))[1]
    final = config.report_dir / f"{prefix}_{stamp(record.started_at)}.md"
    sidecar = {"report": final.name, "run_id": record.run_id, "journey": record.journey,
               "environment": record.environment, "date": isoformat(record.started_at),
               "result": context["result"], "rto_seconds": record.rto_seconds,
               "rpo_seconds": context["rpo_seconds"], "operator": operator, "reviewer": reviewer}
    try:
        config.report_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(final) as tmp:
            tmp.write_text(text, encoding="utf-8")
        with atomic_path(final.with_suffix(SIDECAR_SUFFIX)) as tmp:
            tmp.write_text(json.dumps(sidecar, indent=2) + "\n", encoding="utf-8")
    except FileExistsError as exc:
        raise ReportError(f"{final}: a report of this run already exists", "reports are never overwritten") from exc
    except OSError as exc:
        raise ReportError(f"{config.report_dir}: cannot write the report ({exc.strerror})",
                          "check report_dir / DRILL_REPORT_DIR and its permissions") from exc
    return final


# -- history --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DrillEntry:
    path: Path
    date: datetime | None
    result: str  # "PASS", "FAIL" or "UNKNOWN"
    rto_seconds: float | None
    rpo_seconds: float | None
    kind: str

    def as_json(self) -> dict[str, Any]:
        return {"report": str(self.path), "date": self.date.isoformat() if self.date else None,
                "result": self.result, "rto_seconds": self.rto_seconds, "rpo_seconds": self.rpo_seconds,
                "kind": self.kind}


@dataclass(frozen=True)
class DrillHistory:
    entries: list[DrillEntry]  # newest first
    last_pass: DrillEntry | None
    overdue: bool  # no passing drill within the last quarter
    checked_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {"drills": [e.as_json() for e in self.entries],
                "last_pass": self.last_pass.as_json() if self.last_pass else None,
                "overdue": self.overdue, "quarter_days": QUARTER.days, "checked_at": self.checked_at.isoformat()}


_FIELD = re.compile(r"^(?P<key>[A-Za-z][A-Za-z ()/]*?):[ \t]*(?P<value>.*)$", re.M)
_RESULT = re.compile(r"\*\*Result:\s*(PASS|FAIL)\*\*")


def drill_history(report_dir: Path, now: datetime) -> DrillHistory:
    """Past drill reports in report_dir, from their sidecars, else parsed from the records themselves (so a
    record written by hand from the runbook's template counts too)."""
    entries = []
    if report_dir.is_dir():
        for path in sorted(report_dir.glob("*.md")):
            entry = None if path.name.startswith(".") else _read_entry(path)
            if entry:
                entries.append(entry)
    entries.sort(key=lambda e: e.date or datetime.min.replace(tzinfo=now.tzinfo), reverse=True)
    last_pass = next((e for e in entries if e.result == "PASS" and e.date), None)
    overdue = last_pass is None or now - last_pass.date > QUARTER  # type: ignore[operator]
    return DrillHistory(entries, last_pass, overdue, now)


def _read_entry(path: Path) -> DrillEntry | None:
    """A report's entry; None for a Markdown file that is not a drill record (a README, notes)."""
    sidecar = path.with_suffix(SIDECAR_SUFFIX)
    kind = path.name.rsplit("_", 1)[0]
    if sidecar.is_file():
        try:
            data = json.loads(sidecar.read_text(encoding="utf-8"))
            return DrillEntry(path, as_datetime(data.get("date")), data.get("result", "UNKNOWN"),
                              data.get("rto_seconds"), data.get("rpo_seconds"), data.get("journey") or kind)
        except (OSError, ValueError):
            pass
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return DrillEntry(path, None, "UNKNOWN", None, None, kind)
    fields: dict[str, str] = {}
    for match in _FIELD.finditer(text):
        fields.setdefault(match["key"].strip(), match["value"].strip())
    if "Date (UTC)" not in fields and not _RESULT.search(text):
        return None
    date = _parse_date(fields.get("Start time (UTC)") or fields.get("Date (UTC)") or "")
    result = _RESULT.search(text)
    rpo_minutes = _number(fields.get("RPO achieved (minutes)"))
    rpo_hours = _number(fields.get("RPO achieved (hours)"))
    rpo = rpo_minutes * 60 if rpo_minutes is not None else (rpo_hours * 3600 if rpo_hours is not None else None)
    rto = _number(fields.get("RTO achieved (minutes)"))
    if result:
        verdict = result.group(1)
    else:
        issues = fields.get("Issues encountered", "").lower()
        verdict = "PASS" if issues in ("none", "no", "-", "n/a") else ("FAIL" if issues else "UNKNOWN")
    return DrillEntry(path, date, verdict, rto * 60 if rto is not None else None, rpo, kind)


def _parse_date(text: str) -> datetime | None:
    text = text.strip().replace(" UTC", "").replace("Z", "+00:00")
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # the runbook's records are in UTC


def _number(text: str | None) -> float | None:
    match = re.match(r"\s*(\d+(?:\.\d+)?)", text or "")
    return float(match.group(1)) if match else None
