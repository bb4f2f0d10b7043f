"""Golden files: what drtui prints (`--json`, `--dry-run`) and the records it writes, kept as syrupy snapshots
in the test module's `__snapshots__/` folder and regenerated on purpose (`pytest --snapshot-update`), like the
SVG snapshots.

What varies between two runs is masked first, so a golden file fails only when the shape or the wording changes:
- the given roots (a world's or a test's folder) always become `<root>`;
- with `live=True` (output of a real run, or of one that reads the clock; fixed inputs keep their values):
  in text, timestamps → `<time>`, run stamps → `<stamp>`, times of day → `<hh:mm:ss>`, LSNs → `<lsn>`, WAL
  segment names → `<segment>`, "3.2 s"/"1.5 min"-like durations → `<duration>`, sizes → `<size>`, a run id's
  random suffix → `<id>`, a socket path's port → `<port>`, the server's version → `PostgreSQL <version>`, bare
  byte counts → `<n>`;
- in JSON: a whole value that is a time in the one `--json` format (ISO-8601 UTC with a Z) → `<utc>`, any other
  time → `<time>` as in text (tests/headless/test_json_shapes.py finds those), the same masks in every string,
  and numbers under keys that measure (see VARYING_KEYS) → `<number>`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from syrupy.extensions.json import JSONSnapshotExtension
from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode

TEXT_PATTERNS = [
    (re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)?( UTC)?"), "<time>"),
    (re.compile(r"\d{8}T\d{6}Z"), "<stamp>"),
    (re.compile(r"\b\d{4}-\d{2}-\d{2}\b"), "<date>"),  # a day alone (a run near midnight changes it)
    (re.compile(r"\b\d{2}:\d{2}:\d{2}\b"), "<hh:mm:ss>"),
    (re.compile(r"\b[0-9A-F]{24}\b"), "<segment>"),
    (re.compile(r"\b[0-9A-F]{1,8}/[0-9A-F]{1,8}\b"), "<lsn>"),
    (re.compile(r"\b\d+(\.\d+)? ?(Bytes|Byte|bytes|B|kB|KB|KiB|MB|MiB|GB|GiB)\b"), "<size>"),
    (re.compile(r"\b\d+[dhm] \d{2}[hms]\b"), "<duration>"),  # format_duration's `3m 05s`, `1h 02m`, `2d 03h`
    (re.compile(r"\b\d+(\.\d+)? ?(s|ms|sec|seconds?|m|min|minutes?|h|hours?|d|days?)\b"), "<duration>"),
    (re.compile(r"(?<=-)[0-9a-f]{8}\b"), "<id>"),  # a run id's random suffix
    (re.compile(r"(?<=:)\d{4,5}(?=/)"), "<port>"),  # a socket path's port
    (re.compile(r"PostgreSQL \d+\.\d+ \([^()]*\)"), "PostgreSQL <version>"),
    (re.compile(r"\b\d{7,}\b"), "<n>"),  # bare byte counts (free disk)
    # what the data check judged: the last replayed commit when a commit fell between the backup and the target
    # (a loaded machine's timing), else max(created_at)
    (re.compile(r"the last replayed commit = |max\(created_at\) = "), "<newest data> = "),
]
UTC_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{6})?Z")  # drtui.core.jsonshape.json_time
VARYING_KEYS = re.compile(r"(seconds|bytes|size|pid|lsn|segments|age|_at|elapsed|took|count|rows|xid|port|^value$)",
                          re.IGNORECASE)


def normalize_text(text: str, roots: Iterable[Path] = (), *, live: bool = True) -> str:
    for root in sorted({str(r) for r in roots}, key=len, reverse=True):
        text = text.replace(root, "<root>")
    for pattern, mask in TEXT_PATTERNS if live else ():
        text = pattern.sub(mask, text)
    return text


def normalize(data: Any, roots: Iterable[Path] = (), *, live: bool = True, key: str = "") -> Any:
    """`data` (parsed JSON) with what varies masked (see the module's docstring)."""
    roots = list(roots)
    if isinstance(data, dict):
        return {k: normalize(v, roots, live=live, key=k) for k, v in data.items()}
    if isinstance(data, list):
        return [normalize(v, roots, live=live, key=key) for v in data]
    if isinstance(data, str):
        return "<utc>" if live and UTC_TIME.fullmatch(data) else normalize_text(data, roots, live=live)
    if live and isinstance(data, int | float) and not isinstance(data, bool) and VARYING_KEYS.search(key):
        return "<number>"
    return data


class JsonGolden(JSONSnapshotExtension):
    """One `.json` file per golden."""


class TextGolden(SingleFileSnapshotExtension):
    """One `.txt` file per golden (dry-run text, records)."""

    _write_mode = WriteMode.TEXT
    _file_extension = "txt"
