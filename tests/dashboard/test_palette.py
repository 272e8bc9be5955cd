"""Every action the command palette offers exists on the dashboard and runs."""

from __future__ import annotations

import asyncio
from pathlib import Path

from likkerctl.tui.app import Dashboard
from likkerctl.tui.backend import RecordedBackend

RECORDINGS = Path(__file__).parent / "recordings"


def test_every_palette_action_is_an_action_of_the_app() -> None:
    missing = [a for _, a, _ in Dashboard.ACTIONS if not hasattr(Dashboard, f"action_{a}")]
    assert missing == []


def test_refresh_now_from_the_palette_fetches_every_part_again() -> None:
    app = Dashboard(RecordedBackend.load(RECORDINGS / "healthy.json"), refresh_s=0)

    async def refresh() -> dict[str, tuple[float, float]]:
        async with app.run_test() as pilot:
            await app.workers.wait_for_complete()
            before = {name: part.last_try for name, part in app.parts.items()}
            app.do_action("refresh_now")
            await app.workers.wait_for_complete()
            await pilot.pause()
            return {name: (t, app.parts[name].last_try) for name, t in before.items()}

    tries = asyncio.run(refresh())
    assert all(after > before for before, after in tries.values()), tries
