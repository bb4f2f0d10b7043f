"""The wizard's journeys as workers of the App itself, each one awaited coroutine over typed screens (as in
Textual's guide, screens/questions01.py): the point-in-time recovery (backup → target → review), the staging
restore (dump → review) and the drill. Esc on a step goes back one step; a plan is launched detached only after
the review's confirm."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from textual import work
from textual.app import App

from drtui.core.errors import DrError
from drtui.tui.format import in_wizard_words

if TYPE_CHECKING:
    from drtui.core.clock import Clock
    from drtui.core.config import Config
    from drtui.core.gates import ApprovedPlan
    from drtui.core.inventory import Inventory
    from drtui.core.planning import BackupChoice, Target


class PlanProbes(TypedDict, total=False):
    """make_plan's pg_version / free_bytes, given instead of probed (snapshots need stable numbers)."""

    pg_version: int
    free_bytes: int


class Journeys(App[None]):
    """The journeys DrApp runs; each is an action (key, palette, home list) and a worker of its own group, so
    that a second journey replaces the first."""

    config: Config
    clock: Clock
    env_name: str | None
    plan_probes: PlanProbes

    def _scan(self) -> Inventory:
        from drtui.core.inventory import scan

        return scan(self.config, env=self.config.environment(self.env_name), clock=self.clock)

    async def _inventory(self) -> Inventory | None:
        """The backups and the WAL, read off the event loop; None (said out loud) when they cannot be read."""
        try:
            return await asyncio.to_thread(self._scan)
        except DrError as exc:
            self.notify(f"{exc.title}\n{in_wizard_words(exc.hint)}", severity="error", timeout=15)
            return None

    @work(group="wizard", exclusive=True, exit_on_error=False, description="point-in-time recovery wizard")
    async def action_pitr(self) -> None:
        from drtui.tui.screens.choose_target import ChooseTargetScreen, TargetEntry
        from drtui.tui.screens.pick_backup import PickBackupScreen
        from drtui.tui.screens.review import ReviewScreen

        env = self.config.environment(self.env_name)
        self.notify("reading the backups and the WAL archive…", timeout=3)
        inventory = await self._inventory()
        if inventory is None:
            return
        chosen: BackupChoice | None = None
        previous: BackupChoice | None = None
        entry: TargetEntry | None = None
        target: Target | None = None
        approved: ApprovedPlan | None = None
        while approved is None:  # esc goes back one step and keeps what was typed and chosen
            if chosen is None:
                held = entry.target if entry else None
                chosen = await self.push_screen_wait(PickBackupScreen(inventory, env.name, previous, held))
                if chosen is None:
                    return
            elif target is None:
                screen = ChooseTargetScreen(inventory, chosen, entry)
                target = await self.push_screen_wait(screen)
                previous, entry = screen.chosen, screen.entry
                chosen = screen.chosen if target is not None else None
            else:
                approved = await self.push_screen_wait(ReviewScreen.pitr(self, inventory, chosen, target, env))
                if approved is None:
                    target = None
        await self._launch(approved)

    @work(group="wizard", exclusive=True, exit_on_error=False, description="staging restore wizard")
    async def action_staging(self) -> None:
        from drtui.tui.screens.pick_dump import PickDumpScreen
        from drtui.tui.screens.review import ReviewScreen

        env = self.config.environment("staging")
        inventory = await self._inventory()
        if inventory is None:
            return
        approved: ApprovedPlan | None = None
        while approved is None:
            dump = await self.push_screen_wait(PickDumpScreen(inventory.dumps, env.name))
            if dump is None:
                return
            approved = await self.push_screen_wait(ReviewScreen.dump(self, dump, env))
        await self._launch(approved)

    async def _launch(self, approved: ApprovedPlan) -> None:
        from drtui.core.launcher import launch_detached
        from drtui.tui.screens.run import RunScreen

        try:
            run_id, journal = await asyncio.to_thread(launch_detached, approved, self.config)
        except DrError as exc:
            self.notify(f"{exc.title}\n{in_wizard_words(exc.hint)}", severity="error", timeout=15)
            return
        self.notify(f"run {run_id} started in its own process; it goes on if this screen closes")
        await self.push_screen(RunScreen(journal))

    @work(group="wizard", exclusive=True, exit_on_error=False, description="automated drill")
    async def action_drill(self) -> None:
        from drtui.core.launcher import launch_drill
        from drtui.tui.screens.drill import DrillScreen

        choice = await self.push_screen_wait(DrillScreen())
        if choice is None:
            return
        try:
            run_id, journal, process = await asyncio.to_thread(
                launch_drill, self.config, target_time=choice.target_time, skip_backup=choice.skip_backup,
                operator=choice.operator, reviewer=choice.reviewer)
        except (DrError, OSError) as exc:
            self.notify(getattr(exc, "title", str(exc)), title="the drill did not start", severity="error",
                        timeout=15)
            return
        await self._follow_launched(journal, process, "the drill", f"drill {run_id}")

    @work(group="wizard", exclusive=True, exit_on_error=False, description="rollback, promote or advance")
    async def start_operation(self, name: str, env_name: str, *extra: str) -> None:
        """A rollback, promote or advance of `env_name` (the result screen's keys), detached like any run."""
        from drtui.core.launcher import launch_operation

        try:
            run_id, journal, process = await asyncio.to_thread(launch_operation, self.config, name, env_name,
                                                               *extra)
        except (DrError, OSError) as exc:
            self.notify(getattr(exc, "title", str(exc)), title=f"the {name} did not start", severity="error",
                        timeout=15)
            return
        await self._follow_launched(journal, process, f"the {name}", f"{name} {run_id}")

    async def _follow_launched(self, journal: Path, process: subprocess.Popen, what: str, run: str) -> None:
        """Show the run of a launched command; one refused before its first step ends without a journal: its
        run screen is closed and why is said. That it started is said only once its journal exists."""
        from drtui.tui.screens.run import RunScreen

        screen = RunScreen(journal)
        await self.push_screen(screen)
        while not journal.exists():
            code = process.poll()
            if code is not None and not journal.exists():
                out = journal.with_suffix(".out")
                said = out.read_text(errors="replace").strip().splitlines()[-6:] if out.exists() else []
                self.notify("\n".join(said) or f"it exited {code}",
                            title=f"{what} stopped before it began (exit {code})", severity="error", timeout=30)
                if self.screen is screen:
                    screen.dismiss()
                return
            await asyncio.sleep(0.2)
        self.notify(f"{run} started in its own process; it goes on if this screen closes")
