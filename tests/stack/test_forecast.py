"""The disk forecast and the alert rules on a real stack with a small disk headroom.

1. The Friday incident under `requeue` makes the disk alert fire in Prometheus and reach
   Alertmanager before the broker raises its disk alarm; Alertmanager delivers it to the
   stack's webhook, whose disk-full runbook (enforce mode) fixes the incident unattended.
2. Accuracy: filling the disk at a steady rate, the ETA given 30% of the way is within
   ±15% of when the broker actually hit its limit.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from likkerctl.core.disk import sampler as disk_sampler
from likkerctl.core.disk.forecast import forecast
from likkerctl.core.profile import Profile
from likkerctl.runbooks.steps import recovered
from tests.conftest import stack_fixture
from tests.helpers import RunningStack, drain_ids, free_ports, wait_for
from tests.incident import disk_full_ran_once
from tests.ops.conftest import Cli

HEADROOM = 600_000_000
ALERT = "LikkerBrokerDiskFullWithinOneHour"

# A disk of its own: the alert must fire from the incident's fill, and the accuracy test's
# writer must be the only thing filling the disk (others' test runs share this machine's).
stack = stack_fixture(
    own_disk=True,
    takers=2,
    retry_policy="requeue",
    taker_rate=0.0,
    disk_headroom_bytes=HEADROOM,
    webhook_mode="enforce",
)


@pytest.fixture(scope="module")
def cli(stack: RunningStack, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    return Cli(stack, tmp_path_factory.mktemp("config"))


def node(stack: RunningStack) -> dict[str, Any]:
    """The node's figures (the management API has none for a few seconds after boot)."""
    found = wait_for(lambda: next((n for n in stack.mgmt("nodes") if "disk_free" in n), None))
    assert found, "the management API never reported disk figures"
    return dict(found)


def profile_of(stack: RunningStack, tmp: Path) -> Profile:
    s = stack.settings
    return Profile(amqp_url=s.amqp_url, mgmt_url=s.management_url, state_dir=str(tmp))


def test_the_limit_sits_the_headroom_below_free_disk(stack: RunningStack) -> None:
    n = node(stack)
    assert 0 < n["disk_free"] - n["disk_free_limit"] <= HEADROOM
    assert n["disk_free"] - n["disk_free_limit"] > HEADROOM - 100_000_000


def test_forecast_json_names_its_source(cli: Cli, stack: RunningStack) -> None:
    # Until Prometheus has scraped the broker, the answer comes from the sampler, and says so.
    first = cli("forecast", "--json")
    assert first.rc == 0, first.stderr
    if first.json["source"] == "sampler":
        assert first.json["fallback_reason"] == "Prometheus has no RabbitMQ disk metrics"
    assert wait_for(lambda: cli("forecast", "--json").json["source"] == "prometheus", 30, 2)
    run = cli("forecast", "--json")
    data = run.json
    assert data["answer"]["status"] in ("filling", "not filling", "not enough data")
    assert data["redeliveries"]["queue"] == "likker.actions"
    dead = f"http://127.0.0.1:{free_ports().prometheus}"
    fallback = cli("forecast", "--json", env={"LIKKER_PROMETHEUS_URL": dead})
    assert fallback.rc == 0, fallback.stderr
    assert fallback.json["source"] == "sampler"
    assert dead in fallback.json["fallback_reason"]
    forced = cli("forecast", "--source", "prometheus", env={"LIKKER_PROMETHEUS_URL": dead})
    assert forced.rc == 3 and dead in forced.stderr
    assert cli("forecast", "--source", "tea").rc == 2


def firing_in_prometheus(stack: RunningStack) -> bool:
    alerts = stack.http.get(f"{stack.settings.prometheus_url}/api/v1/alerts", timeout=5).json()
    return any(
        a["labels"]["alertname"] == ALERT and a["state"] == "firing"
        for a in alerts["data"]["alerts"]
    )


def in_alertmanager(stack: RunningStack) -> bool:
    alerts = stack.http.get(f"{stack.settings.alertmanager_url}/api/v2/alerts", timeout=5).json()
    return any(a["labels"]["alertname"] == ALERT for a in alerts)


def disk_run(cli: Cli) -> dict[str, Any] | None:
    """The webhook's finished disk-full run, if there is one."""
    run = cli("webhook", "log", "--json")
    assert run.rc == 0, run.stderr
    rows = [r for r in run.json if r["alertname"] == ALERT and r["status"] == "firing"]
    assert len(rows) <= 1, rows
    return rows[0] if rows and rows[0]["outcome"] not in ("queued", "running") else None


def test_friday_under_requeue_is_fixed_by_the_webhook_unattended(
    stack: RunningStack, cli: Cli
) -> None:
    """The acceptance run of the webhook: Prometheus → Alertmanager → runbook, enforced."""
    assert not firing_in_prometheus(stack)
    # 10,000 (user, post) pairs, more than the ~7,500 human likes sent: a user likes a post
    # once, so every human like that gets a 202 must become a row.
    pop = stack.population(users=100, posts=100, friday=True)
    assert pop.bot is not None and pop.bot.bot_id is not None
    join = stack.load_in_background(
        pop, scenario="friday", rate=150, duration_s=100, bot_share=0.5, concurrency=16
    )
    try:
        fired = wait_for(lambda: in_alertmanager(stack) or node(stack)["disk_free_alarm"], 110, 2)
        n = node(stack)
        assert fired and not n["disk_free_alarm"], (
            f"disk alarm first: headroom {n['disk_free'] - n['disk_free_limit']}"
        )
        assert firing_in_prometheus(stack)
        headroom = n["disk_free"] - n["disk_free_limit"]
        print(f"alert at Alertmanager with {headroom / 1e6:.0f} MB of headroom left")
        row = wait_for(lambda: disk_run(cli), 300, 3)
    finally:
        report = join()
    assert row, cli("webhook", "log").stdout
    assert row["runbook"] == "disk-full" and row["mode"] == "enforce"
    assert row["outcome"] == "ok", json.dumps(row["detail"], indent=1)
    print(f"webhook: alert received → last step in {row['seconds']:.1f}s")

    # Each step ran once, for real, under the alert's key.
    steps = disk_full_ran_once(cli, row["alert"])
    assert steps["bots block"]["params"]["bot"] == pop.bot.bot_id
    assert steps["shovel"]["params"]["where"] == f"bot in ({pop.bot.bot_id})"

    # The bot is stopped at the gateway; every normal like is stored exactly once.
    assert stack.like(pop.posts[0], pop.bot.token).status_code == 403
    stored = stack.wait_stored(report.accepted["user"])
    assert len(stored) == len(report.accepted["user"]) and set(stored.values()) == {1}
    assert stack.rows_for_bot(pop.bot.bot_id) == 0
    # The bot's accepted likes are all in the DLQ (a move may duplicate, never lose).
    dead = set(drain_ids(stack.settings.amqp_url, "likker.actions.dlq"))
    assert set(report.accepted["bot"]) <= dead
    # Nothing of the bot's cycles on: the actions queue drains (the management API's count
    # lags a statistics interval, hence the wait).
    drained = wait_for(lambda: stack.queue("likker.actions").get("messages", 0) == 0, 30, 1)
    assert drained, stack.sample("likker.actions", 20)

    # Not filling any more within the alert's hour: the webhook said so, and so does the
    # forecast now over the last half minute. (Prometheus's own TSDB and the stack's logs
    # share its disk, so a slow fill of a few kB/s usually remains, days from full.)
    forecast = cli("forecast", "--window", "30", "--json")
    assert recovered(forecast.json["answer"], 3600), forecast.json["answer"]


class SteadyWriter:
    """Writes `rate` bytes/s into `path` (fsynced), until stopped or the disk alarm."""

    def __init__(self, path: Path, rate: float) -> None:
        self.path = path
        self.rate = rate
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        chunk = b"\0" * int(self.rate / 10)
        start = time.monotonic()
        with open(self.path, "wb") as fh:
            i = 0
            while not self.stop.is_set():
                fh.write(chunk)
                fh.flush()
                os.fsync(fh.fileno())
                i += 1
                delay = start + i / 10 - time.monotonic()
                if delay > 0:
                    time.sleep(delay)


def headroom_of(n: dict[str, Any]) -> int:
    return int(n["disk_free"]) - int(n["disk_free_limit"])


@pytest.fixture
def ballast(stack: RunningStack) -> Iterator[tuple[Path, Path]]:
    prefill = stack.settings.state_dir / "prefill.bin"
    steady = stack.settings.state_dir / "steady.bin"
    yield prefill, steady
    prefill.unlink(missing_ok=True)
    steady.unlink(missing_ok=True)
    assert wait_for(lambda: not node(stack)["disk_free_alarm"], 60)


def test_eta_at_30_percent_is_within_15_percent(
    stack: RunningStack, ballast: tuple[Path, Path], tmp_path: Path
) -> None:
    # RabbitMQ re-measures free disk every few seconds when far from its limit and more
    # often near it, so the run starts from a small headroom: pre-fill most of the way at
    # once, wait for the broker to see it, then fill at a steady rate.
    prefill, steady = ballast
    target, rate = 300_000_000, 3_000_000  # ≈ 100 s to the limit
    with open(prefill, "wb") as fh:
        fh.truncate(0)
        remaining = headroom_of(node(stack)) - target
        block = b"\0" * (16 << 20)
        while remaining > 0:
            remaining -= fh.write(block[: min(len(block), remaining)])
        fh.flush()
        os.fsync(fh.fileno())
    assert wait_for(lambda: headroom_of(node(stack)) < target * 1.1, 60, 0.5)
    seen = headroom_of(node(stack))
    # One more reading, so the sampler's series starts after the pre-fill settled.
    wait_for(lambda: headroom_of(node(stack)) != seen, 15, 0.5)

    sampler = disk_sampler.Sampler(profile_of(stack, tmp_path))
    start_headroom = headroom_of(sampler.poll()[0])
    writer = SteadyWriter(steady, rate)
    started = time.time()
    writer.thread.start()
    predicted: tuple[float, float] | None = None  # (when, eta)
    try:
        deadline = time.monotonic() + start_headroom / rate * 3
        while time.monotonic() < deadline:
            time.sleep(1.0)
            n = sampler.poll()[0]
            if n.get("disk_free_alarm") or headroom_of(n) <= 0:
                break
            if predicted is None and headroom_of(n) <= 0.7 * start_headroom:
                fc = forecast(next(iter(sampler.series(600).values())))
                assert fc.status == "filling", fc
                assert fc.eta_s is not None
                predicted = (time.time(), fc.eta_s)
        else:
            pytest.fail("the broker never reached its disk limit")
        reached_at = time.time()
    finally:
        writer.stop.set()
        writer.thread.join()
    assert predicted is not None, "the limit was reached before 30% was seen"
    when, eta = predicted
    actual = reached_at - when
    error = abs(eta - actual) / actual
    print(
        f"from {start_headroom / 1e6:.0f} MB at {rate / 1e6:.0f} MB/s: at 30% "
        f"({when - started:.0f}s in) ETA {eta:.1f}s, actual {actual:.1f}s, error {error:.1%}"
    )
    assert error <= 0.15
