"""The real program in a real terminal (tmux): what an operator sees, and a UI killed mid-run."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from drtui.core.events import RunFinished, StepLogged
from drtui.core.journal import list_runs, read_events
from drtui.sandbox import Sandbox
from drtui.tui.app import DrApp
from drtui.tui.run_state import pid_alive
from drtui.tui.widgets.log_panel import LogPanel
from tests.textdump import screen_text
from tests.tui.conftest import run_ended
from tests.tui.test_wizard_sandbox import recoverable, stop_runs  # noqa: F401 - a fixture

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")


class Terminal:
    """One tmux session running a command on a tmux server of its own (so no test races another's server
    shutting down); keys in, screen text out."""

    def __init__(self, command: list[str], width: int = 100, height: int = 30) -> None:
        self.name = f"drtui-test-{uuid.uuid4().hex[:8]}"
        self.tmux = ["tmux", "-L", self.name]
        subprocess.run([*self.tmux, "new-session", "-d", "-s", self.name, "-x", str(width), "-y", str(height),
                        *command], check=True)

    def screen(self) -> str:
        done = subprocess.run([*self.tmux, "capture-pane", "-p", "-t", self.name], capture_output=True, text=True,
                              check=False)
        return done.stdout

    def keys(self, *keys: str, literal: bool = False) -> None:
        subprocess.run([*self.tmux, "send-keys", "-t", self.name, *(["-l"] if literal else []), *keys], check=True)

    def wait_for(self, *texts: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if all(text in screen for text in texts):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"{texts!r} never showed; the screen:\n{screen}")
            time.sleep(0.1)

    def pane_pid(self) -> int:
        done = subprocess.run([*self.tmux, "display-message", "-p", "-t", self.name, "#{pane_pid}"],
                              capture_output=True, text=True, check=True)
        return int(done.stdout.strip())

    def kill(self) -> None:
        subprocess.run([*self.tmux, "kill-server"], check=False, capture_output=True)


@pytest.fixture
def terminal() -> Iterator[Callable[[list[str]], Terminal]]:
    opened: list[Terminal] = []

    def open_terminal(command: list[str]) -> Terminal:
        opened.append(Terminal(command))
        return opened[-1]

    yield open_terminal
    for term in opened:
        term.kill()


def drtui_command(world: Sandbox) -> list[str]:
    return ["env", "TZ=UTC", "TERM=xterm-256color", sys.executable, "-m", "drtui", "--config", str(world.config_path)]


def test_drtui_opens_on_home_and_shows_the_status_screen(shared_sandbox: Sandbox, terminal) -> None:
    term = terminal(drtui_command(shared_sandbox))
    home = term.wait_for("journeys", "environments", "WAL sync")
    assert "Point-in-time recovery" in home and "Automated drill" in home
    assert "production" in home and "heartbeats" in home
    assert "PITR" in home and "Status" in home  # the footer shows the keys
    term.keys("s")
    status = term.wait_for("refreshes every", "WAL sync")
    assert "dump_age" in status and "base backup" in status and "WAL sync" in status
    term.keys("escape")
    term.wait_for("journeys")
    term.keys("q")
    deadline = time.monotonic() + 20
    while "journeys" in term.screen() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "journeys" not in term.screen()


def test_status_watch_is_the_status_screen_on_its_own(shared_sandbox: Sandbox, terminal) -> None:
    term = terminal([*drtui_command(shared_sandbox), "status", "--watch"])
    screen = term.wait_for("refreshes every", "WAL sync", "recoverable window")
    assert "journeys" not in screen
    term.keys("escape")  # the only screen: leaving it quits
    deadline = time.monotonic() + 20
    while "refreshes every" in term.screen() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "refreshes every" not in term.screen()


def test_the_restore_outlives_a_killed_ui_and_reattaching_shows_it_all(recoverable: dict, terminal) -> None:  # noqa: F811
    world, config, target = recoverable["world"], recoverable["config"], recoverable["target"]
    term = terminal(drtui_command(world))
    term.wait_for("journeys")
    term.keys("p")
    term.wait_for("pick a base backup")
    term.keys("Enter")
    term.wait_for("choose the target")
    term.keys(target.strftime("%Y-%m-%d %H:%M:%S UTC"), literal=True)
    term.wait_for("✔ reachable time")
    term.keys("C-n")
    term.wait_for("type production and press enter", timeout=120)
    term.keys("production", literal=True)
    term.keys("Enter")
    term.wait_for("● running", timeout=60)
    journal = list_runs(config.state_dir)[0]
    ui = term.pane_pid()
    term.kill()  # the terminal goes away as in an SSH drop: SIGHUP to the UI, the run goes on
    assert not any(isinstance(e, RunFinished) for e in read_events(journal)), "killed mid-run"
    deadline = time.monotonic() + 20
    while pid_alive(ui):
        assert time.monotonic() < deadline, "the UI outlived its terminal"
        time.sleep(0.1)
    deadline = time.monotonic() + 300
    while not any(isinstance(e, RunFinished) for e in read_events(journal)):
        assert time.monotonic() < deadline, "the detached run did not finish"
        time.sleep(0.5)
    events = read_events(journal)
    assert events[-1].ok, events[-6:]
    logged = sum(len(e.lines) for e in events if isinstance(e, StepLogged))

    async def reattach() -> tuple[int, str]:
        app = DrApp(config, start=journal)
        async with app.run_test(size=(100, 34)) as pilot:
            screen = await run_ended(pilot)
            return screen.query_one(LogPanel).line_count, screen_text(app)

    lines, text = asyncio.run(reattach())
    assert lines == logged > 0
    assert "✔ finished" in text


def test_sandbox_demo_opens_the_wizard_and_says_how_to_tear_down(open_tmp, terminal) -> None:
    root = open_tmp / "demo"
    command = ["sh", "-c", f"TZ=UTC TERM=xterm-256color {sys.executable} -m drtui sandbox demo --root {root}; "
               "echo exit=$?; sleep 60"]
    try:
        term = terminal(command)
        home = term.wait_for("journeys", "WAL sync", timeout=180)
        assert "ago" in home  # the demo took a dump, a base backup and a WAL sync: fresh heartbeats
        term.keys("p")
        pick = term.wait_for("pick a base backup", "✔ usable", timeout=60)
        assert "basebackup" in pick or "usable" in pick
        term.keys("q")
        screen = term.wait_for("exit=0", timeout=30)
        flat = screen.replace("\n", "")  # the line wraps at the terminal's width
        assert "tear it down with:" in flat and f"sandbox down --root {root}" in flat
        assert (root / "sandbox.json").exists()
        world = Sandbox(root)
        assert world.counts()["bookings"] > 180  # live traffic and the demo's rows
    finally:
        Sandbox(root).down()
    assert not root.exists()
