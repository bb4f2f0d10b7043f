"""The only writers of the headless face: data to stdout, diagnostics to stderr, every line redacted."""

from __future__ import annotations

import enum
import json
import sys
from typing import Any

from drtui.core.errors import DrError, ErrorKind
from drtui.core.jsonshape import json_document
from drtui.core.secrets import redact, redact_data


class ExitCode(enum.IntEnum):
    OK = 0
    FAILED = 1
    REFUSED = 2


def out(text: str = "") -> None:
    """A line of data on stdout."""
    sys.stdout.write(redact(text) + "\n")
    sys.stdout.flush()


def out_json(data: dict[str, Any]) -> None:
    """A `--json` document on stdout (schema and times: drtui.core.jsonshape), masked before it is serialized
    (masking the text could break the JSON)."""
    document = json_document(redact_data(data))
    sys.stdout.write(json.dumps(document, indent=2, default=lambda value: redact(str(value))) + "\n")
    sys.stdout.flush()


def err(text: str) -> None:
    """A diagnostic line on stderr."""
    sys.stderr.write(redact(text) + "\n")
    sys.stderr.flush()


def report_error(exc: DrError) -> int:
    err(f"drtui: {exc.title}")
    if exc.hint:
        err(f"  hint: {exc.hint}")
    return exit_code_for(exc)


def exit_code_for(exc: DrError) -> ExitCode:
    """The documented exit code of an error's kind: 1 failed, 2 refused or bad input (nothing touched)."""
    return ExitCode.FAILED if exc.kind is ErrorKind.FAILED else ExitCode.REFUSED
