"""The wizard: a full-screen face of the engine. It makes no decision the headless face could not make too;
it shows the inventory, walks the operator to an approved plan, launches the run detached and follows its
journal."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

from textual.app import SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from drtui.core.clock import Clock, SystemClock
from drtui.core.config import Config
from drtui.tui.wizard import Journeys, PlanProbes


class DrApp(Journeys):
    """drtui's wizard. `start` picks the first screen: "home", "status", or a journal path to re-attach; the
    journeys (action_pitr, action_staging, action_drill) are the workers of `Journeys`."""

    CSS_PATH = "app.tcss"
    TITLE = "drtui"
    SUB_TITLE = "disaster recovery for PostgreSQL"
    ENABLE_COMMAND_PALETTE = True
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, config: Config, clock: Clock | None = None, start: str | Path = "home",
                 env_name: str | None = None, plan_probes: PlanProbes | None = None) -> None:
        super().__init__()
        self.config = config
        self.clock = clock or SystemClock()
        self.start = start
        self.env_name = env_name
        self.plan_probes = plan_probes or PlanProbes()

    def on_mount(self) -> None:
        from drtui.tui.screens.home import HomeScreen
        from drtui.tui.screens.run import RunScreen
        from drtui.tui.screens.status import StatusScreen

        if self.start == "status":
            self.push_screen(StatusScreen())
            return
        self.push_screen(HomeScreen())
        if isinstance(self.start, Path):
            self.push_screen(RunScreen(self.start))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A worker that failed is said out loud: never a silent stop of the wizard or a view."""
        if event.state is WorkerState.ERROR:
            error = event.worker.error
            title = getattr(error, "title", None) or f"{type(error).__name__}: {error}"
            hint = getattr(error, "hint", "")
            self.notify(f"{title}\n{hint}".strip(), title=f"{event.worker.description or event.worker.name} failed",
                        severity="error", timeout=30)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Home", "Back to the journeys and environments", self.action_home)
        yield SystemCommand("Status", "The heartbeat view, refreshing itself", self.action_status)
        yield SystemCommand("Point-in-time recovery", "Pick a base backup and a target, then restore",
                            self.action_pitr)
        yield SystemCommand("Staging restore", "Load a dump into staging", self.action_staging)
        yield SystemCommand("Automated drill", "Restore production's backups into staging and prove them",
                            self.action_drill)
        yield SystemCommand("Re-attach", "Follow the newest run on this host again", self.action_reattach)

    def action_home(self) -> None:
        from drtui.tui.screens.home import HomeScreen

        while len(self.screen_stack) > 1 and not isinstance(self.screen, HomeScreen):
            self.pop_screen()
        if not isinstance(self.screen, HomeScreen):
            self.push_screen(HomeScreen())

    def action_status(self) -> None:
        from drtui.tui.screens.status import StatusScreen

        self.push_screen(StatusScreen())

    def action_reattach(self, journal: Path | None = None) -> None:
        from drtui.core.journal import list_runs
        from drtui.core.runner import is_operation
        from drtui.tui.screens.run import RunScreen

        path = journal or next((p for p in list_runs(self.config.state_dir) if not is_operation(p)), None)
        if path is None:
            self.notify("no runs on this host yet", severity="warning")
            return
        self.push_screen(RunScreen(path))


def run_app(config: Config, clock: Clock | None = None) -> None:
    """`drtui` with no subcommand."""
    DrApp(config, clock).run()


def run_status_app(config: Config, clock: Clock | None = None) -> None:
    """`drtui status --watch`: the read-only status view on its own."""
    DrApp(config, clock, start="status").run()
