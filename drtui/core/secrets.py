"""Keeps passwords out of every log, report and screen.

Every secret the core reads (a password from PGPASSWORD or an env file) is registered here, and every face
passes its text through `redact` before showing or writing it. DSN passwords are masked by pattern too, so
a secret that never passed through the registry is still hidden.
"""

from __future__ import annotations

import re
import threading

MASK = "******"
_known: set[str] = set()
_lock = threading.Lock()
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)(?P<secret>[^@\s]+)(?=@)", re.I)
_KEY_PASSWORD = re.compile(r"(?P<head>\b(?:password|passwd|pgpassword|postgres_password)\s*[=:]\s*)"
                           r"(?P<secret>'[^']*'|\"[^\"]*\"|\S+)", re.I)


def register_secret(value: str | None) -> None:
    if value and len(value) >= 3:
        with _lock:
            _known.add(value)


def redact(text: str) -> str:
    text = _URL_PASSWORD.sub(lambda m: m["head"] + MASK, text)
    text = _KEY_PASSWORD.sub(lambda m: m["head"] + MASK, text)
    with _lock:
        secrets = sorted(_known, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text
