"""The dashboard's keys against the real stack, through Textual's pilot."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from textual.widgets import DataTable

from likkerctl.core.profile import Profile, load_profile
from likkerctl.tui.app import ActionScreen, Dashboard
from likkerctl.tui.backend import LiveBackend
from tests.helpers import RunningStack, wait_for
from tests.ops.conftest import Cli
from tests.ops.test_fleet import consumers


@pytest.fixture
def profile(ops_stack: RunningStack, monkeypatch: pytest.MonkeyPatch) -> Profile:
    monkeypatch.setenv("LIKKER_STATE_DIR", str(ops_stack.settings.state_dir))
    return load_profile()


async def confirm_and_wait(pilot: Any) -> ActionScreen:
    screen = pilot.app.screen
    assert isinstance(screen, ActionScreen)
    for _ in range(200):
        if screen.stage != "planning":
            break
        await pilot.pause(0.05)
    assert screen.stage == "confirm", screen.query_one("#action-status").render()
    await pilot.press("y")
    for _ in range(300):
        if screen.stage in ("done", "failed"):
            break
        await pilot.pause(0.05)
    assert screen.stage == "done", screen.query_one("#action-status").render()
    return screen


def test_pause_and_resume_from_the_dashboard(profile: Profile, ops_stack: RunningStack) -> None:
    asyncio.run(pause_and_resume(profile, ops_stack))


async def pause_and_resume(profile: Profile, ops_stack: RunningStack) -> None:
    assert consumers(ops_stack) == 2
    app = Dashboard(LiveBackend(profile), refresh_s=1.0)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("p")
        await confirm_and_wait(pilot)
        assert wait_for(lambda: consumers(ops_stack) == 0, timeout=10)
        await pilot.press("escape")
        await pilot.press("r")
        await confirm_and_wait(pilot)
        assert wait_for(lambda: consumers(ops_stack) == 2, timeout=10)


@pytest.fixture
def paused(cli: Cli) -> Iterator[None]:
    assert cli("takers", "pause", "--yes").rc == 0
    yield
    assert cli("takers", "resume", "--yes").rc == 0


def test_block_the_selected_bot_from_the_dashboard(
    profile: Profile, ops_stack: RunningStack, cli: Cli, paused: None
) -> None:
    asyncio.run(block_selected_bot(profile, ops_stack, cli))


async def block_selected_bot(profile: Profile, ops_stack: RunningStack, cli: Cli) -> None:
    owner, author = ops_stack.new_user(), ops_stack.new_user()
    post = ops_stack.new_post(author["token"])
    bot = ops_stack.new_bot(owner["user_id"], "cycler")
    for _ in range(30):
        assert ops_stack.like(post, bot["token"]).status_code == 202
    actor = f"bot:{bot['bot_id']}"
    app = Dashboard(LiveBackend(profile, sample_size=200), refresh_s=1.0, sample_every_s=1.0)
    async with app.run_test(size=(100, 30)) as pilot:
        table = app.query_one("#offenders", DataTable)
        for _ in range(200):
            keys = [str(k.value) for k in table.rows]
            if actor in keys:
                break
            await pilot.pause(0.05)
        assert actor in keys, keys
        table.focus()
        table.move_cursor(row=keys.index(actor))
        await pilot.press("b")
        screen = await confirm_and_wait(pilot)
        assert "blocked" in str(screen.query_one("#action-status").render())
    assert ops_stack.like(post, bot["token"]).status_code == 403
    entry = cli("audit", "--json", "--command", "bots block").json["entries"][0]
    assert entry["params"]["bot"] == bot["bot_id"] and entry["result"] == "ok"
    assert cli("bots", "unblock", str(bot["bot_id"]), "--yes").rc == 0
