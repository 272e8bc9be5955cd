"""The forecast follows a fix, and names the queue that writes the broker's log.

The Friday incident under `requeue` on a stack whose state dir is a disk of its own (a
tmpfs: tests/incident.py says why), with a small headroom so the incident fills it within
the hour. While it runs, `likkerctl forecast --json` says the broker fills within the hour
and names `likker.actions` as the top writer of the node's log. Then the operator's fix
with likkerctl's commands (block the bot, pause the takers, shovel the bot's messages to
the DLQ, resume) while the same load goes on: people's likes keep flowing, so the log keeps
growing, slower. Within 120 s of the fix's last step the forecast is out of the hour (the
runbooks' `recovered`), fitted since a change of slope, and the actions queue writes less.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from likkerctl.runbooks.steps import recovered
from tests.conftest import stack_fixture
from tests.helpers import RunningStack, wait_for
from tests.incident import StoppableLoad, fix
from tests.ops.conftest import Cli

HEADROOM = 600_000_000


stack = stack_fixture(
    own_disk=True, takers=2, retry_policy="requeue", taker_rate=0.0, disk_headroom_bytes=HEADROOM
)


@pytest.fixture(scope="module")
def cli(stack: RunningStack, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    return Cli(stack, tmp_path_factory.mktemp("config"))


def forecast(cli: Cli) -> dict[str, Any]:
    run = cli("forecast", "--json")
    assert run.rc == 0, run.stderr
    return dict(run.json)


def actions_rate(doc: dict[str, Any]) -> float:
    return next(w["entries_per_s"] for w in doc["writers"] if w["queue"] == "likker.actions")


def test_the_forecast_names_the_writer_and_follows_the_fix_within_two_minutes(
    stack: RunningStack, cli: Cli
) -> None:
    assert wait_for(lambda: forecast(cli)["source"] == "prometheus", 60, 2)
    pop = stack.population(users=120, posts=100, friday=True)
    assert pop.bot is not None and pop.bot.bot_id is not None
    load = StoppableLoad(
        stack, pop, scenario="friday", rate=150, duration_s=400, bot_share=0.7, concurrency=16
    ).start()
    try:

        def incident_seen() -> dict[str, Any] | None:
            doc = forecast(cli)
            answer, writers = doc["answer"], doc["writers"]
            within = answer["status"] == "filling" and answer["eta_s"] < 3600
            named = writers and writers[0]["queue"] == "likker.actions"
            return doc if within and named else None

        started = time.time()
        during = wait_for(incident_seen, 120, 5)
        assert during, forecast(cli)
        # A minute of it at least, so its rate (over the last minute) is the incident's.
        time.sleep(max(0.0, started + 60 - time.time()))
        during = incident_seen()
        assert during, forecast(cli)
        top = during["writers"][0]
        assert (top["source"], top["node"]) == ("prometheus", next(iter(during["nodes"])))
        assert top["share"] > 0.5 and top["retained"] is not None
        print(f"incident: {during['answer']['eta_s'] / 60:.0f} min to the limit; top {top}")

        began = time.time()
        fixed = fix(cli, pop.bot.bot_id)["takers resume"]
        liked = people_liked(load)

        def recovered_now() -> dict[str, Any] | None:
            doc = forecast(cli)
            return doc if recovered(doc["answer"], 3600) else None

        after = wait_for(recovered_now, 120 - (time.time() - fixed), 5)
        took = time.time() - fixed
        # People's likes flowed all along (45/s sent): the fix did it, not a quiet load.
        flowed = people_liked(load) - liked
        assert after, forecast(cli)
        print(f"recovered {took:.0f}s after the fix ({flowed} likes since): {after['answer']}")
        # Once the log-write rate's minute has left the fix behind (the shovel writes too).
        time.sleep(max(0.0, fixed + 75 - time.time()))
        later = forecast(cli)
    finally:
        load.stop()
    answer = after["answer"]
    assert answer["regime_reason"] == "slope change"
    assert answer["regime_since"] >= began - 15
    assert flowed >= 20 * took
    assert recovered(later["answer"], 3600), later["answer"]
    print(f"likker.actions: {actions_rate(during)} entries/s, {actions_rate(later)} after the fix")
    assert actions_rate(later) < actions_rate(during) / 2


def people_liked(load: StoppableLoad) -> int:
    """People's likes the gateway accepted so far (the load's running tally)."""
    return len(load.report.accepted["user"]) if load.report else 0
