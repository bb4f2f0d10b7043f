"""The sandbox's application, stopped and started as a restore's stop_app_command / start_app_command do it:
`python -m drtui.sandbox.app stop|start --root ROOT` pauses (SIGSTOP) or resumes (SIGCONT) production's traffic
and API stand-in, so no booking is written and no request answered between the two."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
from pathlib import Path

from drtui.sandbox.world import STATE_FILE


def app_pids(root: Path) -> list[int]:
    """The process groups of production's app in the sandbox in `root`: its traffic and its API stand-in."""
    state = json.loads((root / STATE_FILE).read_text())
    return [pid for pid in (state.get("traffic"), state.get("apis", {}).get("production")) if pid]


def signal_app(root: Path, action: str) -> None:
    for pid in app_pids(root):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGSTOP if action == "stop" else signal.SIGCONT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("action", choices=("stop", "start"))
    parser.add_argument("--root", required=True, type=Path)
    args = parser.parse_args()
    signal_app(args.root, args.action)


if __name__ == "__main__":
    main()
