"""The Friday incident replayed under the legacy `requeue` retry policy, and fixed from the
dashboard with `f` and one confirmation."""

from __future__ import annotations

import asyncio
import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import OptionList

from likkerctl.core import contract
from likkerctl.core.clients import control
from likkerctl.core.profile import load_profile
from likkerctl.core.store import audit
from likkerctl.runbooks import spec
from likkerctl.tui.app import Dashboard, RunbookScreen
from likkerctl.tui.backend import LiveBackend
from likkerctl.webhook.ledger import Ledger
from tests.conftest import stack_fixture
from tests.helpers import RunningStack, drain_ids, mixed_batch, wait_for

stack = stack_fixture(retry_policy="requeue", takers=2, taker_rate=0)


def _bot_delivery_counts(stack: RunningStack, bot_id: int) -> list[int]:
    sample = stack.sample(contract.ACTIONS_QUEUE, count=50)
    return [
        int(m["properties"]["headers"].get("x-delivery-count", 0))
        for m in sample
        if m["properties"].get("headers", {}).get(contract.H_BOT) == bot_id
    ]


def _friday_load(stack: RunningStack, pop: Any) -> Any:
    """The Friday load, with more of the bot's likes than the takers can hold.

    The takers hold up to their prefetch of the cycling likes; with more than that, some
    are always in the queue to be seen there, as on the Friday.
    """
    holds = stack.settings.takers * stack.settings.taker_prefetch_count
    rate, bot_share = 300, 0.5
    seconds = max(4, math.ceil(2 * holds / (rate * bot_share)))
    report = stack.load(pop, scenario="friday", rate=rate, duration_s=seconds, bot_share=bot_share)
    assert len(report.accepted["bot"]) > holds and report.accepted["user"], report.as_json()
    return report


def test_friday_under_requeue_cycles_the_bots_likes_forever(stack: RunningStack) -> None:
    pop = stack.population(users=40, posts=30, friday=True)
    assert pop.bot is not None and pop.bot.bot_id is not None
    report = _friday_load(stack, pop)

    # Normal likes still land, each once, while the bot's messages keep coming back.
    stored = stack.wait_stored(report.accepted["user"])
    assert len(stored) == len(report.accepted["user"]) and set(stored.values()) == {1}
    assert stack.rows_for_bot(pop.bot.bot_id) == 0

    first = wait_for(lambda: _bot_delivery_counts(stack, pop.bot.bot_id), timeout=20)  # type: ignore[union-attr]
    assert first, "no bot message found in the queue: were they acked or dead-lettered?"
    later = wait_for(
        lambda: [
            c
            for c in _bot_delivery_counts(stack, pop.bot.bot_id)  # type: ignore[union-attr]
            if c > max(first) + 10
        ],
        timeout=30,
    )
    # Our management 'get' requeues too, but adds one per sample: only takers add tens.
    assert later, f"x-delivery-count is not rising (first sample max {max(first)})"
    assert stack.rows_for_bot(pop.bot.bot_id) == 0
    assert stack.queue(contract.DLQ_QUEUE).get("messages", 0) == 0
    _stop_the_loop(stack)


def test_a_mixed_batch_under_requeue_acks_the_good_and_cycles_the_refused(
    stack: RunningStack,
) -> None:
    pop = stack.population(users=2, posts=3, friday=True)
    mixed = mixed_batch(stack, pop)
    assert [s["state"] for s in stack.control("pause")] == ["paused", "paused"]
    stack.publish(mixed.messages)
    stack.control("resume", "taker-1")

    assert stack.wait_stored(mixed.stored) == dict.fromkeys(mixed.stored, 1)

    def refused_again_and_again() -> bool:
        seen = stack.taker_state("taker-1")["outcomes"]
        return all(seen.get(kind, 0) >= 10 for kind in ("forbidden", "not-found", "invalid"))

    assert wait_for(refused_again_and_again, timeout=30), stack.taker_state("taker-1")
    # Paused, a taker hands back what it holds: left in the queue are exactly the refused
    # messages, each delivered many times, and none was dead-lettered.
    assert [s["state"] for s in stack.control("pause")] == ["paused", "paused"]
    left: list[tuple[str, int]] = []
    wait_for(lambda: left.extend(stack.take_all()) or len(left) >= len(mixed.refused), 10)
    stack.control("resume")
    assert sorted(m for m, _ in left) == sorted(mixed.refused)
    assert all(count >= 5 for _, count in left), left
    assert not [m for m, _ in stack.dead_letters() if m in mixed.refused]
    assert stack.stored(mixed.stored) == dict.fromkeys(mixed.stored, 1)


def _stop_the_loop(stack: RunningStack) -> None:
    """Empty the actions queue: paused takers return what they hold, then purge."""
    assert [s["state"] for s in stack.control("pause")] == ["paused", "paused"]
    stack.purge(contract.ACTIONS_QUEUE)
    stack.control("resume")


# -- the same incident fixed from the dashboard: `f`, one confirmation ------------------------
DISK_ALERT = "LikkerBrokerDiskFullWithinOneHour"


def dashboard_runbooks(tmp_path: Path) -> Path:
    """The built-in runbooks without the forecast check (it waits 45 s by design)."""
    text = spec.default_text()
    check = 'step = "verify-forecast"\nsettle_s = 45\ntimeout_s = 180\n'
    assert check in text
    path = tmp_path / "runbooks.toml"
    path.write_text(text.replace(f"[[runbooks.disk-full.steps]]\n{check}", ""))
    return path


def webhook_row(stack: RunningStack) -> dict[str, Any] | None:
    """The stack's own webhook (observe mode) done with the disk alert."""
    rows = Ledger(f"sqlite:///{stack.settings.state_dir / 'likkerctl.db'}").recent(50)
    done = [r for r in rows if r["alertname"] == DISK_ALERT and r["outcome"] == "observed"]
    return done[0] if done else None


def test_f_fixes_the_incident_from_the_dashboard_with_one_confirmation(
    stack: RunningStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pop = stack.population(users=40, posts=30, friday=True)
    assert pop.bot is not None and pop.bot.bot_id is not None
    bot = pop.bot
    report = _friday_load(stack, pop)
    cycling = wait_for(lambda: [c for c in _bot_delivery_counts(stack, bot.bot_id) if c >= 10], 30)  # type: ignore[arg-type]
    assert cycling, "the bot's likes are not cycling"
    # The disk alert, firing in the stack's Alertmanager; the stack's webhook observes it.
    resp = stack.http.post(
        f"{stack.settings.alertmanager_url}/api/v2/alerts",
        json=[{"labels": {"alertname": DISK_ALERT, "severity": "page"}}],
        timeout=10,
    )
    resp.raise_for_status()
    observed = wait_for(lambda: webhook_row(stack), 60, 1)
    assert observed, "the stack's webhook did not get the alert"

    monkeypatch.setenv("LIKKER_STATE_DIR", str(stack.settings.state_dir))
    backend = LiveBackend(load_profile(), runbooks=dashboard_runbooks(tmp_path))
    screen = asyncio.run(press_f_and_confirm(backend))
    assert screen.planned is not None
    planned = [(s.step, s.status) for s in screen.planned.report.steps]
    assert planned == [
        ("find-offenders", "ok"),
        ("bots block", "ok"),
        ("takers pause", "ok"),
        ("shovel", "ok"),
        ("takers resume", "ok"),
        ("escalate", "skipped"),
        ("escalate", "skipped"),
    ]
    assert {r.status for r in screen.rows.values()} == {"ok", "skipped"}, screen.rows

    # Fixed: the culprit blocked, its messages in the DLQ, the takers running, and nothing
    # of it cycling any more (the actions queue drains).
    assert stack.like(pop.posts[0], bot.token).status_code == 403
    stored = stack.wait_stored(report.accepted["user"])
    assert len(stored) == len(report.accepted["user"]) and set(stored.values()) == {1}
    drained = wait_for(lambda: stack.queue(contract.ACTIONS_QUEUE).get("messages", 0) == 0, 30, 1)
    assert drained, stack.sample(contract.ACTIONS_QUEUE, 20)
    dead = set(drain_ids(stack.settings.amqp_url, contract.DLQ_QUEUE))
    assert set(report.accepted["bot"]) <= dead
    takers = control.command(backend.profile, "status")
    assert [t["state"] for t in takers] == ["running", "running"]

    # The same audit rows as the webhook's, under the webhook's key, in mode manual.
    key = observed["alert"]
    rows = audit.entries(backend.profile.audit_url, 200, alert=key)
    manual = [r for r in rows if r["counts"].get("runbook", {}).get("mode") == "manual"]
    done = Counter(r["command"] for r in manual if not r["dry_run"])
    # One block per offender: the first test's bot may still cycle too (the takers held some
    # of its messages when that test purged the queue), and is as much a culprit.
    offenders = [o["bot"] for o in screen.planned.state["offenders"]]
    assert bot.bot_id in offenders
    assert done == {
        "runbook disk-full": 1,
        "find-offenders": 1,
        "bots block": len(offenders),
        "takers pause": 1,
        "shovel": 1,
        "takers resume": 1,
    }
    blocked = {r["params"]["bot"] for r in manual if r["command"] == "bots block"}
    assert blocked == set(offenders)
    assert all(r["result"] == "ok" for r in manual), manual
    webhook = {
        r["command"] for r in rows if r["counts"].get("runbook", {}).get("mode") == "observe"
    }
    assert set(done) == webhook - {"verify-forecast"}
    assert screen.report is not None and screen.report.outcome == "ok"
    (tmp_path / "runbook-run.json").write_text(  # what tests/dashboard's recording replays
        json.dumps(
            {
                "plan": screen.planned.report.as_json(),
                "state": screen.planned.state,
                "run": screen.report.as_json(),
            }
        )
    )


async def press_f_and_confirm(backend: LiveBackend) -> RunbookScreen:
    app = Dashboard(backend, refresh_s=1.0, sample_every_s=float("inf"))
    async with app.run_test(size=(120, 40)) as pilot:
        for _ in range(200):  # until the alerts panel has the alert
            alerts = app.parts["alerts"].value
            if alerts and any(a["name"] == DISK_ALERT for a in alerts.get("alerts", [])):
                break
            await pilot.pause(0.05)
        await pilot.press("f")
        screen = app.screen
        assert isinstance(screen, RunbookScreen)
        for _ in range(100):
            if screen.stage != "choosing" or screen.choices:
                break
            await pilot.pause(0.05)
        if screen.stage == "choosing":  # the redelivery-storm alert fired as well: pick
            disk = next(i for i, c in enumerate(screen.choices) if c.runbook == "disk-full")
            picker = screen.query_one("#runbook-choices", OptionList)
            picker.highlighted = next(n for n, o in enumerate(picker.options) if o.id == str(disk))
            await pilot.press("enter")
        for _ in range(600):
            if screen.stage in ("confirm", "failed"):
                break
            await pilot.pause(0.05)
        assert screen.stage == "confirm", screen.query_one("#runbook-status").render()
        await pilot.press("y")
        for _ in range(1200):
            if screen.stage in ("done", "failed"):
                break
            await pilot.pause(0.05)
        assert screen.stage == "done", screen.query_one("#runbook-status").render()
        assert "runbook disk-full: ok" in str(screen.query_one("#runbook-status").render())
        return screen
