"""What happened around a moment: the destructive transactions in the WAL near a time, read with pg_waldump.

The hardest step of a real PITR is the runbook's first, "identify the target recovery time". The WAL knows:
each transaction's commit record carries its commit time and the relation files it dropped (DROP TABLE, and the
old files of a TRUNCATE, which creates new ones in the same transaction), and every row a DELETE or UPDATE
touched is one heap record naming its relation file. Grouped by transaction, those records say who dropped,
emptied or rewrote what, and when, so the target can be "just before that transaction"
(`recovery_target_xid` with `recovery_target_inclusive = off`).

Relation files are named by relfilenode; names come from production's catalog. A dropped relation is no longer
in it, so every reading of the catalog is remembered (`state_dir/relations-<env>.json`) and the last name known
for a relfilenode is used, with a note when it comes from memory or not at all.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from drtui.core.config import Environment
from drtui.core.errors import DrError, PostgresError
from drtui.core.inventory.wal import fetch_segments
from drtui.core.models import WalCoverage, format_lsn, parse_lsn, segment_name
from drtui.core.postgres import query

DEFAULT_ROW_THRESHOLD = 100  # a DELETE or UPDATE of at least this many rows of one table in one transaction
FIRST_USER_RELFILENODE = 16384  # PostgreSQL's FirstNormalObjectId: below it, the system catalogs
PG_ATTRIBUTE = 1249  # its rows change in place (no new storage) when ALTER TABLE drops or retypes a column

_RECORD = re.compile(r"rmgr: (\w+)\s+len \(rec/tot\):\s+\d+/\s*\d+, tx:\s+(\d+), lsn: ([0-9A-F]+/[0-9A-F]+), "
                     r"prev [0-9A-F]+/[0-9A-F]+, desc: (\w+)(.*)")
_BLOCK_REL = re.compile(r"blkref #0: rel \d+/\d+/(\d+)")
_FILE = re.compile(r"base/\d+/(\d+)")
_COMMIT_TIME = re.compile(r"^ (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) UTC")


@dataclass(frozen=True)
class Change:
    """One committed transaction that destroyed or rewrote data."""

    xid: int
    committed_at: datetime
    commit_lsn: int
    kind: str  # DROP, TRUNCATE, REWRITE, DELETE, UPDATE or DDL
    relations: tuple[str, ...]  # names, or "relfilenode N" where no catalog knew it
    rows: int | None  # rows deleted or updated; None where the WAL does not count them (DROP, TRUNCATE)
    note: str = ""

    def describe(self) -> str:
        what = ", ".join(self.relations) or "(columns changed: ALTER TABLE)"
        rows = f" ({self.rows} rows)" if self.rows is not None else ""
        text = f"{self.kind} {what}{rows}"
        return f"{text}; {self.note}" if self.note else text

    def about(self) -> str:
        """What a target just before this transaction says of it."""
        return f"committed at {self.committed_at.isoformat().replace('+00:00', 'Z')}, {self.describe()}"

    def as_json(self) -> dict:
        return {"xid": self.xid, "committed_at": self.committed_at.isoformat().replace("+00:00", "Z"),
                "commit_lsn": format_lsn(self.commit_lsn), "kind": self.kind, "relations": list(self.relations),
                "rows": self.rows, "note": self.note}

    @classmethod
    def from_json(cls, data: dict) -> Change:
        return cls(int(data["xid"]), datetime.fromisoformat(data["committed_at"]), parse_lsn(data["commit_lsn"]),
                   data["kind"], tuple(data["relations"]), data["rows"], data.get("note", ""))


@dataclass
class _Transaction:
    deleted: Counter[int] = field(default_factory=Counter)
    updated: Counter[int] = field(default_factory=Counter)
    inserted_into: set[int] = field(default_factory=set)
    created: set[int] = field(default_factory=set)
    columns_changed: bool = False


@dataclass(frozen=True)
class RelationNames:
    """relfilenode -> qualified name, from the catalog now and from what earlier readings remembered."""

    current: dict[int, str]
    remembered: dict[int, str]

    def tables(self, relfilenodes: list[int]) -> tuple[tuple[str, ...], str]:
        """The tables among a change's relation files (indexes and TOAST are left out), and a note on where the
        names came from; the bare relfilenodes when no reading of the catalog knew any of them."""
        names = [self.current.get(r) or self.remembered.get(r) for r in relfilenodes]
        known = tuple(dict.fromkeys(n for n in names if n))
        if not known:
            return (tuple(f"relfilenode {r}" for r in relfilenodes),
                    "not in production's catalog, now or when drtui last read it")
        from_memory = any(r not in self.current and r in self.remembered for r in relfilenodes)
        return known, "name from an earlier reading of the catalog" if from_memory and not any(
            r in self.current for r in relfilenodes) else ""


Found = list[tuple[str, list[int], int | None]]  # (kind, relfilenodes, rows) per destructive change


def parse_waldump(lines: Iterable[str], threshold: int = DEFAULT_ROW_THRESHOLD
                  ) -> Iterator[tuple[int, datetime, int, Found]]:
    """Per committed transaction with destructive changes: (xid, commit time, commit LSN, changes). Reads
    pg_waldump's text output (run with TZ=UTC)."""
    open_transactions: dict[int, _Transaction] = {}
    for line in lines:
        match = _RECORD.match(line)
        if not match:
            continue
        rmgr, xid_text, lsn_text, op, rest = match.groups()
        xid = int(xid_text)
        if xid == 0:
            continue
        tx = open_transactions.setdefault(xid, _Transaction())
        block = _BLOCK_REL.search(rest)
        relfilenode = int(block.group(1)) if block else None
        if rmgr == "Heap" and relfilenode is not None:
            if relfilenode < FIRST_USER_RELFILENODE:
                tx.columns_changed |= relfilenode == PG_ATTRIBUTE and op in ("UPDATE", "HOT_UPDATE")
            elif op == "DELETE":
                tx.deleted[relfilenode] += 1
            elif op in ("UPDATE", "HOT_UPDATE"):
                tx.updated[relfilenode] += 1
            elif op in ("INSERT", "INSERT+INIT"):
                tx.inserted_into.add(relfilenode)
        elif rmgr == "Heap2" and op == "MULTI_INSERT" and relfilenode is not None:
            tx.inserted_into.add(relfilenode)
        elif rmgr == "Storage" and op == "CREATE":
            tx.created.update(int(n) for n in _FILE.findall(rest))
        elif rmgr == "Transaction" and op in ("COMMIT", "ABORT"):
            open_transactions.pop(xid, None)
            when = _COMMIT_TIME.match(rest)
            if op == "ABORT" or not when:
                continue
            dropped = [int(n) for n in _FILE.findall(rest.split("rels:", 1)[1].split(";", 1)[0])] \
                if "rels:" in rest else []
            changes = _classify(tx, dropped, threshold)
            if changes:
                yield xid, _utc(when.group(1)), parse_lsn(lsn_text), changes


def _classify(tx: _Transaction, dropped: list[int], threshold: int) -> Found:
    changes: Found = []
    if dropped and not tx.created:
        changes.append(("DROP", dropped, None))
    elif dropped:
        kind = "REWRITE" if tx.inserted_into & tx.created else "TRUNCATE"
        changes.append((kind, sorted(tx.created) + dropped, None))  # the new files carry the name now
    for kind, counts in (("DELETE", tx.deleted), ("UPDATE", tx.updated)):
        changes += [(kind, [rel], rows) for rel, rows in counts.most_common() if rows >= threshold]
    if not changes and tx.columns_changed and not tx.created and not tx.inserted_into:
        changes.append(("DDL", [], None))
    return changes


def _utc(text: str) -> datetime:
    fmt = "%Y-%m-%d %H:%M:%S.%f" if "." in text else "%Y-%m-%d %H:%M:%S"
    return datetime.strptime(text, fmt).replace(tzinfo=UTC)


def segments_around(coverage: WalCoverage, timeline: int, start: datetime, end: datetime) -> list[str]:
    """The segments whose records can hold commits between `start` and `end`: from the first archived after
    `start` to the first archived after `end` (a segment is archived once it is full, after its last record)."""
    segnos = coverage.segments.get(timeline, [])
    times = coverage.archived_at.get(timeline, [])
    if not segnos:
        return []
    if len(times) != len(segnos):
        return [segment_name(timeline, s, coverage.segment_size) for s in segnos]
    chosen = []
    for segno, archived in zip(segnos, times, strict=True):
        if archived < start.timestamp():
            continue
        chosen.append(segno)
        if archived > end.timestamp():
            break
    return [segment_name(timeline, s, coverage.segment_size) for s in chosen]


def read_changes(coverage: WalCoverage, pg_bin: Path, around: datetime, span: timedelta, names: RelationNames,
                 threshold: int = DEFAULT_ROW_THRESHOLD, timeline: int | None = None) -> list[Change]:
    """The destructive transactions committed within `span` of `around`, oldest first."""
    timeline = timeline or max(coverage.segments, default=1)
    wanted = segments_around(coverage, timeline, around - span, around + span)
    if not wanted:
        return []
    with tempfile.TemporaryDirectory(prefix="drtui-events-") as tmp:
        files = fetch_segments(coverage, set(wanted), Path(tmp))
        present = [files[name] for name in wanted if name in files]
        if not present:
            return []
        changes: list[Change] = []
        for run in _contiguous(present, coverage.segment_size):
            changes += _changes_in(run, pg_bin, around, span, names, threshold)
    return changes


def _contiguous(paths: list[Path], segment_size: int) -> list[list[Path]]:
    """Runs of consecutive segments (pg_waldump reads a range only without holes)."""
    per_id = 0x100000000 // segment_size
    runs: list[list[Path]] = []
    previous = None
    for path in paths:
        segno = int(path.name[8:16], 16) * per_id + int(path.name[16:24], 16)
        if previous is None or segno != previous + 1:
            runs.append([])
        runs[-1].append(path)
        previous = segno
    return runs


def _changes_in(run: list[Path], pg_bin: Path, around: datetime, span: timedelta, names: RelationNames,
                threshold: int) -> list[Change]:
    argv = [str(pg_bin / "pg_waldump"), "--path", str(run[0].parent), run[0].name, run[-1].name]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False,
                              env={**os.environ, "TZ": "UTC", "LC_ALL": "C"})
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DrError(f"pg_waldump could not read {run[0].name}..{run[-1].name}: {exc}",
                         "check pg_bin in the environment's config") from exc
    changes = []
    for xid, committed, lsn, found in parse_waldump(done.stdout.splitlines(), threshold):
        if abs(committed - around) > span:
            continue
        for kind, relfilenodes, rows in found:
            tables, note = names.tables(relfilenodes)
            changes.append(Change(xid, committed, lsn, kind, tables, rows, note))
    return changes


# -- relation names ---------------------------------------------------------------------------------------------

CATALOG_QUERY = ("select c.relfilenode, n.nspname || '.' || c.relname from pg_class c "
                 "join pg_namespace n on n.oid = c.relnamespace where c.relfilenode >= %s "
                 "and c.relkind in ('r', 'p', 'm')")


def read_names(state_dir: Path, env: Environment) -> tuple[RelationNames, str]:
    """The environment's relation names now (remembered for later), or only the remembered ones when it does not
    answer; and why it did not ('' when it did). Backups call it too, so that names are known after a DROP."""
    import psycopg

    try:
        rows = query(env, CATALOG_QUERY, (FIRST_USER_RELFILENODE,))
    except (PostgresError, psycopg.Error) as exc:
        return RelationNames({}, recall(state_dir, env.name)), getattr(exc, "title", None) or str(exc).strip()
    return remember(state_dir, env.name, {int(r[0]): str(r[1]) for r in rows}), ""


def memory_path(state_dir: Path, env_name: str) -> Path:
    return state_dir / f"relations-{env_name}.json"


def remember(state_dir: Path, env_name: str, current: dict[int, str]) -> RelationNames:
    """Merge a reading of the catalog into what was remembered, save it, and return both."""
    path = memory_path(state_dir, env_name)
    remembered = recall(state_dir, env_name)
    merged = {**remembered, **current}
    _save(path, {str(k): v for k, v in sorted(merged.items())})
    return RelationNames(current, remembered)


def recall(state_dir: Path, env_name: str) -> dict[int, str]:
    data = _load(memory_path(state_dir, env_name))
    return {int(k): str(v) for k, v in data.items() if str(k).isdigit()}


def _save(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=0))
    os.replace(tmp, path)


def _load(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# -- the changes listed, for a target just before one of them ---------------------------------------------------

def changes_path(state_dir: Path, env_name: str) -> Path:
    return state_dir / f"changes-{env_name}.json"


def remember_changes(state_dir: Path, env_name: str, changes: Iterable[Change]) -> None:
    """Keep the changes listed (by xid), so that a target just before one of them can say what it did."""
    path = changes_path(state_dir, env_name)
    _save(path, _load(path) | {str(c.xid): c.as_json() for c in changes})


def known_change(state_dir: Path, env_name: str, xid: int) -> Change | None:
    """The change of transaction `xid` as a listing found it, or None when none did."""
    data = _load(changes_path(state_dir, env_name)).get(str(xid))
    try:
        return Change.from_json(data) if data else None
    except (KeyError, TypeError, ValueError):
        return None
