"""The inventory's read cache: results of reading a file, keyed by (path, size, mtime), in one JSON file under
state_dir, so that a second scan reads nothing it has read before. A damaged or unwritable cache is only
slower, never wrong: it is ignored and rebuilt."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

CACHE_VERSION = 1
CACHE_FILE = "inventory-cache.json"


def file_key(path: Path) -> str | None:
    """`path|size|mtime_ns`, or None when the file cannot be stat'ed."""
    try:
        st = path.stat()
    except OSError:
        return None
    return f"{path}|{st.st_size}|{st.st_mtime_ns}"


class ReadCache:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.entries: dict[str, dict[str, Any]] = {}
        self.used: set[tuple[str, str]] = set()
        self.dirty = False
        if path is not None:
            with contextlib.suppress(OSError, ValueError):
                data = json.loads(path.read_text())
                if data.get("version") == CACHE_VERSION:
                    self.entries = {k: v for k, v in data["sections"].items() if isinstance(v, dict)}

    def get(self, section: str, key: str | None) -> Any:
        if key is None:
            return None
        value = self.entries.get(section, {}).get(key)
        if value is not None:
            self.used.add((section, key))
        return value

    def put(self, section: str, key: str | None, value: Any) -> None:
        if key is None:
            return
        self.entries.setdefault(section, {})[key] = value
        self.used.add((section, key))
        self.dirty = True

    def save(self) -> None:
        """Write the entries used by this scan (so files that are gone drop out of the cache)."""
        if self.path is None:
            return
        kept: dict[str, dict[str, Any]] = {}
        for section, key in self.used:
            kept.setdefault(section, {})[key] = self.entries[section][key]
        if not self.dirty and sum(map(len, kept.values())) == sum(map(len, self.entries.values())):
            return
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"version": CACHE_VERSION, "sections": kept}))
            os.replace(tmp, self.path)
