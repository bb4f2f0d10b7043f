"""Keeps passwords out of every log, report and screen.

Every secret the core reads (a password from PGPASSWORD or an env file, the password of a URL in an env file)
is registered here, and passwords written in text are masked by pattern too: a URL's `user:password@`, and
`password=`, `PGPASSWORD=`, `POSTGRES_PASSWORD=` (a libpq DSN, a command line, a script's output).

Masking works on data, before it is serialized: `redact_data` masks every string inside a journal event, a
record's context or a JSON summary, so the JSON written afterwards is always whole. `redact` is for a line of
plain text; run over JSON text, a quoted secret pattern could swallow the JSON that follows it.
"""

from __future__ import annotations

import re
import threading
from typing import Any

MASK = "******"
_known: set[str] = set()
_lock = threading.Lock()
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)(?P<secret>[^@\s]+)(?=@)", re.I)
_KEY_PASSWORD = re.compile(r"(?P<head>\b(?:password|passwd|pgpassword|postgres_password)\s*[=:]\s*)"
                           r"(?P<secret>'[^']*'|\"[^\"]*\"|\S+)", re.I)
_SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_KEY|CREDENTIAL", re.I)


def register_secret(value: str | None) -> None:
    if value and len(value) >= 3:
        with _lock:
            _known.add(value)


def looks_secret(name: str) -> bool:
    """A variable whose name says it holds a secret (POSTGRES_PASSWORD, JWT_SECRET, API_TOKEN, ...)."""
    return bool(_SECRET_NAME.search(name))


def register_url_password(value: str) -> None:
    """Register the password of every `scheme://user:password@` URL in `value` (a DATABASE_URL, say)."""
    for match in _URL_PASSWORD.finditer(value):
        register_secret(match["secret"])


def redact(text: str) -> str:
    """A line of plain text with every password masked."""
    text = _URL_PASSWORD.sub(lambda m: m["head"] + MASK, text)
    text = _KEY_PASSWORD.sub(lambda m: m["head"] + MASK, text)
    with _lock:
        secrets = sorted(_known, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


def redact_data(value: Any) -> Any:
    """`value` with every string in it (through dicts, lists and tuples) masked; other values as they are."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: redact_data(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_data(item) for item in value)
    return value
