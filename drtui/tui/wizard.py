"""The point-in-time recovery as one awaited coroutine over typed screens: backup → target → review →
launch. Esc on a step goes back one step; the plan is launched detached only after the review's confirm."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from textual import work

from drtui.core.errors import DrError

if TYPE_CHECKING:
    from drtui.tui.app import DrApp


def start_pitr(app: DrApp) -> None:
    _pitr(app)


def _scan(app: DrApp) -> Any:
    from drtui.core.inventory import scan

    env = app.config.environment(app.env_name)
    return scan(app.config, env=env, clock=app.clock)


@work(group="wizard", exclusive=True, exit_on_error=False, description="point-in-time recovery wizard")
async def _pitr(app: DrApp) -> None:
    from drtui.tui.screens.choose_target import ChooseTargetScreen
    from drtui.tui.screens.pick_backup import PickBackupScreen
    from drtui.tui.screens.review import ReviewScreen

    env = app.config.environment(app.env_name)
    app.notify("reading the backups and the WAL archive…", timeout=3)
    try:
        inventory = await asyncio.to_thread(_scan, app)
    except DrError as exc:
        app.notify(f"{exc.title}\n{exc.hint}", severity="error", timeout=15)
        return
    step, chosen, target = 0, 0, None
    while True:
        if step == 0:
            picked = await app.push_screen_wait(PickBackupScreen(inventory, env.name))
            if picked is None:
                return
            chosen, step = picked, 1
        elif step == 1:
            target = await app.push_screen_wait(ChooseTargetScreen(inventory, chosen))
            step = 0 if target is None else 2
        else:
            assert target is not None
            approved = await app.push_screen_wait(ReviewScreen.pitr(app, inventory, chosen, target, env))
            if approved is None:
                step = 1
                continue
            break
    await _launch(app, approved)


def start_staging(app: DrApp) -> None:
    _staging(app)


@work(group="wizard", exclusive=True, exit_on_error=False, description="staging restore wizard")
async def _staging(app: DrApp) -> None:
    from drtui.tui.screens.pick_dump import PickDumpScreen
    from drtui.tui.screens.review import ReviewScreen

    env = app.config.environment("staging")
    try:
        inventory = await asyncio.to_thread(_scan, app)
    except DrError as exc:
        app.notify(f"{exc.title}\n{exc.hint}", severity="error", timeout=15)
        return
    while True:
        dump = await app.push_screen_wait(PickDumpScreen(inventory.dumps, env.name))
        if dump is None:
            return
        approved = await app.push_screen_wait(ReviewScreen.dump(app, dump, env))
        if approved is not None:
            break
    await _launch(app, approved)


async def _launch(app: DrApp, approved: Any) -> None:
    from drtui.core.launcher import launch_detached
    from drtui.tui.screens.run import RunScreen

    try:
        run_id, journal = await asyncio.to_thread(launch_detached, approved, app.config)
    except DrError as exc:
        app.notify(f"{exc.title}\n{exc.hint}", severity="error", timeout=15)
        return
    app.notify(f"run {run_id} started in its own process; it goes on if this screen closes")
    await app.push_screen(RunScreen(journal))


def start_drill(app: DrApp) -> None:
    _drill(app)


@work(group="wizard", exclusive=True, exit_on_error=False, description="automated drill")
async def _drill(app: DrApp) -> None:
    from drtui.core.launcher import launch_drill
    from drtui.tui.screens.drill import DrillScreen
    from drtui.tui.screens.run import RunScreen

    choice = await app.push_screen_wait(DrillScreen())
    if choice is None:
        return
    try:
        run_id, journal, process = await asyncio.to_thread(
            launch_drill, app.config, target_time=choice.target_time, skip_backup=choice.skip_backup,
            operator=choice.operator, reviewer=choice.reviewer)
    except (DrError, OSError) as exc:
        app.notify(getattr(exc, "title", str(exc)), title="the drill did not start", severity="error", timeout=15)
        return
    app.notify(f"drill {run_id} started in its own process; it goes on if this screen closes")
    screen = RunScreen(journal)
    await app.push_screen(screen)
    while not journal.exists():  # a drill refused before its first step ends without a journal: say why
        code = process.poll()
        if code is not None and not journal.exists():
            out = journal.with_suffix(".out")
            said = out.read_text(errors="replace").strip().splitlines()[-6:] if out.exists() else []
            app.notify("\n".join(said) or f"it exited {code}", title=f"the drill stopped before it began (exit {code})",
                       severity="error", timeout=30)
            if app.screen is screen:
                screen.dismiss()
            return
        await asyncio.sleep(0.2)
