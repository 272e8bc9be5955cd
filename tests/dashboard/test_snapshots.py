"""Screens of the dashboard from recordings of a real stack (`likkerctl dashboard --record`).

Recorded on the reference stack: healthy (normal load), the Friday incident (requeue
policy, a banned user's bot cycling), and with the broker unreachable (the other servers
up). The confirmation and in-progress screens replay a recorded dry run and progress.
Regenerate with `pytest tests/dashboard --snapshot-update` after a deliberate change.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable

from likkerctl.tui.app import ActionScreen, ApprovalsScreen, Dashboard, RunbookScreen
from likkerctl.tui.backend import RecordedBackend

RECORDINGS = Path(__file__).parent / "recordings"


def app_for(name: str) -> Dashboard:
    backend = RecordedBackend.load(RECORDINGS / f"{name}.json")
    return Dashboard(backend, refresh_s=0)


async def settled(pilot: Pilot[Any]) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


@pytest.mark.parametrize("name", ["healthy", "friday", "broker-down"])
@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_screens(snap_compare: Any, name: str, size: tuple[int, int]) -> None:
    assert snap_compare(app_for(name), terminal_size=size, run_before=settled)


async def select_bot_and(pilot: Pilot[Any], key: str) -> None:
    await settled(pilot)
    table = pilot.app.query_one("#offenders", DataTable)
    table.focus()
    keys = [str(k.value) for k in table.rows]
    table.move_cursor(row=next(i for i, k in enumerate(keys) if k.startswith("bot:")))
    await pilot.press(key)
    await settled(pilot)


def test_confirmation_shows_the_dry_run_first(snap_compare: Any) -> None:
    app = app_for("friday")

    async def run_before(pilot: Pilot[Any]) -> None:
        await select_bot_and(pilot, "s")
        assert isinstance(pilot.app.screen, ActionScreen)
        assert pilot.app.screen.stage == "confirm"

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_an_action_in_progress(snap_compare: Any) -> None:
    app = app_for("friday")

    async def run_before(pilot: Pilot[Any]) -> None:
        await select_bot_and(pilot, "s")
        await pilot.press("y")
        for _ in range(50):  # until the recorded progress is shown
            await pilot.pause(0.02)
            if "examined" in str(pilot.app.screen.query_one("#action-status").render()):
                break
        assert pilot.app.screen.stage == "running"  # type: ignore[attr-defined]

    try:
        assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)
    finally:
        app.backend.release.set()  # type: ignore[attr-defined]


# -- the runbook from the dashboard (`f`) and the webhook's pending runs (`a`) -------------------
# friday-runbook.json is friday.json with a recorded runbook plan and run, and a run waiting
# for approval (see its "note").
async def until(pilot: Pilot[Any], check: Any, tries: int = 100) -> None:
    for _ in range(tries):
        if check():
            return
        await pilot.pause(0.02)
    raise AssertionError("the screen never got there")


def test_the_runbook_plan_screen_lists_every_steps_dry_run(snap_compare: Any) -> None:
    app = app_for("friday-runbook")

    async def run_before(pilot: Pilot[Any]) -> None:
        await settled(pilot)
        await pilot.press("f")
        screen = pilot.app.screen
        assert isinstance(screen, RunbookScreen)
        await until(pilot, lambda: screen.stage == "confirm")
        await settled(pilot)

    assert snap_compare(app, terminal_size=(120, 40), run_before=run_before)


def test_a_runbook_run_shows_each_steps_progress(snap_compare: Any) -> None:
    app = app_for("friday-runbook")

    async def run_before(pilot: Pilot[Any]) -> None:
        await settled(pilot)
        await pilot.press("f")
        screen = pilot.app.screen
        assert isinstance(screen, RunbookScreen)
        await until(pilot, lambda: screen.stage == "confirm")
        await pilot.press("y")
        # The recording pauses before its 4th step: three done, the rest waiting.
        await until(
            pilot, lambda: [r.status for r in screen.rows.values()][:4] == ["ok"] * 3 + ["waiting"]
        )
        await pilot.pause()

    try:
        assert snap_compare(app, terminal_size=(120, 40), run_before=run_before)
    finally:
        app.backend.release.set()  # type: ignore[attr-defined]


def test_pending_approvals_are_listed_with_their_plan(snap_compare: Any) -> None:
    app = app_for("friday-runbook")

    async def run_before(pilot: Pilot[Any]) -> None:
        await settled(pilot)
        await pilot.press("a")
        assert isinstance(pilot.app.screen, ApprovalsScreen)
        await settled(pilot)

    assert snap_compare(app, terminal_size=(120, 40), run_before=run_before)
