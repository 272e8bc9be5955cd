"""`f` and `a` on recordings: the runbook runs every step after one `y`; a pending run is
approved from the list; recordings made before approvals existed show none."""

from __future__ import annotations

import asyncio
from pathlib import Path

from likkerctl.tui.app import ApprovalsScreen, Dashboard, RunbookScreen
from likkerctl.tui.backend import RecordedBackend

RECORDINGS = Path(__file__).parent / "recordings"


def app_for(name: str) -> Dashboard:
    return Dashboard(RecordedBackend.load(RECORDINGS / f"{name}.json"), refresh_s=0)


async def wait(pilot: object, check: object, tries: int = 200) -> None:
    for _ in range(tries):
        if check():  # type: ignore[operator]
            return
        await pilot.pause(0.02)  # type: ignore[attr-defined]
    raise AssertionError("never")


def test_f_then_y_runs_every_step_and_refreshes_the_panels() -> None:
    app = app_for("friday-runbook")
    app.backend.release.set()  # type: ignore[attr-defined]  # no pause mid-run here

    async def go() -> tuple[RunbookScreen, list[tuple[float, float]]]:
        async with app.run_test(size=(120, 40)) as pilot:
            await app.workers.wait_for_complete()
            await pilot.press("f")
            screen = app.screen
            assert isinstance(screen, RunbookScreen)
            await wait(pilot, lambda: screen.stage == "confirm")
            assert all(r.dry_run for r in screen.rows.values())
            before = {name: p.last_try for name, p in app.parts.items()}
            await pilot.press("y")
            await wait(pilot, lambda: screen.stage == "done")
            await app.workers.wait_for_complete()
            await pilot.pause()
            return screen, [(t, app.parts[n].last_try) for n, t in before.items()]

    screen, tries = asyncio.run(go())
    assert screen.report is not None and screen.report.outcome == "ok"
    assert [(r.step, r.status, r.dry_run) for r in screen.rows.values()][:5] == [
        ("find-offenders", "ok", False),
        ("bots block", "ok", False),
        ("takers pause", "ok", False),
        ("shovel", "ok", False),
        ("takers resume", "ok", False),
    ]
    assert all(after > before for before, after in tries)  # Finished refreshed every part


def test_a_then_y_approves_the_selected_run() -> None:
    app = app_for("friday-runbook")

    async def go() -> str:
        async with app.run_test(size=(120, 40)) as pilot:
            await app.workers.wait_for_complete()
            assert app.check_action("approvals", ()) is True
            await pilot.press("a")
            screen = app.screen
            assert isinstance(screen, ApprovalsScreen)
            await pilot.press("y")
            await app.workers.wait_for_complete()
            await pilot.pause()
            return str(screen.query_one("#approvals-status").render())

    assert "run 3 approved by root" in asyncio.run(go())


def test_recordings_from_before_approvals_have_none_and_no_a_key() -> None:
    app = app_for("friday")

    async def go() -> tuple[object, bool | None, str]:
        async with app.run_test(size=(120, 40)) as pilot:
            await app.workers.wait_for_complete()
            await pilot.press("f")  # friday.json has no recorded runbook to replay
            screen = app.screen
            assert isinstance(screen, RunbookScreen)
            await wait(pilot, lambda: screen.stage == "failed")
            status = str(screen.query_one("#runbook-status").render())
            return app.parts["approvals"].value, app.check_action("approvals", ()), status

    waiting, offered, status = asyncio.run(go())
    assert waiting == [] and offered is False
    assert "no runbook" in status
