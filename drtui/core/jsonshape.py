"""The one shape of every `--json` document: a top-level `"schema"` version, and every time as ISO-8601 in UTC
with a Z. A time is written to the second, with its fraction only when it has one: a commit time or a window's
edge fed back as a target must not move (PostgreSQL's times are to the microsecond, drtui's own to the second).

The faces hand over datetimes or the ISO text the core's `to_json` methods write (which the journals keep);
both come out the same here, so no command formats a time of its own."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

SCHEMA = 1
# A whole value that is a time with an offset (what `datetime.isoformat()` writes for an aware time).
_ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})")


def json_time(moment: datetime) -> str:
    """`2026-01-25T14:30:00Z`, or `2026-01-25T14:30:00.123456Z` for a time with a fraction."""
    moment = moment.astimezone(UTC)
    fraction = f".{moment.microsecond:06d}" if moment.microsecond else ""
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"


def json_value(value: Any) -> Any:
    """`value` with every datetime, and every string that is a whole ISO time, in the one format."""
    if isinstance(value, datetime):
        return json_time(value) if value.tzinfo else value.isoformat()
    if isinstance(value, str) and _ISO_TIME.fullmatch(value):
        return json_time(datetime.fromisoformat(value))
    if isinstance(value, dict):
        return {key: json_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(item) for item in value]
    return value


def json_document(data: dict[str, Any]) -> dict[str, Any]:
    """A `--json` document: the schema version first, then `data` with its times in the one format."""
    return {"schema": SCHEMA, **json_value(data)}
