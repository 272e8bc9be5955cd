"""The Friday incident on a 3-node cluster, fixed by the webhook in enforce mode.

The disk alert fires once per node (its `instance`); Alertmanager delivers all three to the
webhook, which runs disk-full once for the incident and records the others against that run.

The alerts are posted to the stack's real Alertmanager, one per node, with the labels and
annotations Prometheus gives the rule (stack/prometheus/rules/likker.rules.yml): waiting for
`predict_linear` over 5 minutes on three nodes would cost minutes of CI, and what is tested
here is the per-node multiplicity, not the rule (tests/stack/test_forecast.py runs the rule).
Everything after Alertmanager is real: its grouping, the webhook, the runbook's commands.

Its own stack (requeue, enforce), not the session's cluster: this module sorts before
test_failover.py, so its stack is stopped before the shared one starts.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.conftest import stack_fixture
from tests.helpers import RunningStack, drain_ids, wait_for
from tests.incident import disk_full_ran_once
from tests.ops.conftest import Cli

ALERT = "LikkerBrokerDiskFullWithinOneHour"
SAME_INCIDENT = "same incident"

stack = stack_fixture(
    # The state dir a tmpfs of its own: the runbook's last step checks the forecast, and
    # other test runs on this machine's shared disk must not make it look like filling.
    own_disk=True,
    nodes=3,
    takers=2,
    retry_policy="requeue",
    taker_rate=0.0,
    disk_headroom_bytes=800_000_000,
    webhook_mode="enforce",
)


def disk_alert(stack: RunningStack, instance: str) -> dict[str, Any]:
    """The disk alert for one node, as Prometheus sends it to Alertmanager."""
    now = datetime.now(UTC)
    return {
        "labels": {"alertname": ALERT, "instance": instance, "severity": "page", "team": "likes"},
        "annotations": {
            "summary": "RabbitMQ will reach its disk limit within one hour",
            "description": f"Headroom above disk_free_limit on {instance} is negative.",
            "runbook": "disk-full",
        },
        "startsAt": now.isoformat(),
        # Firing for the whole test: no resolved notification while the run runs.
        "endsAt": (now + timedelta(minutes=30)).isoformat(),
        "generatorURL": f"{stack.settings.prometheus_url}/graph",
    }


def post_alerts(stack: RunningStack, *alerts: dict[str, Any]) -> None:
    resp = stack.http.post(
        f"{stack.settings.alertmanager_url}/api/v2/alerts", json=list(alerts), timeout=10
    )
    assert resp.status_code == 200, resp.text


def disk_rows(cli: Cli) -> list[dict[str, Any]]:
    run = cli("webhook", "log", "--json")
    assert run.rc == 0, run.stderr
    return [r for r in run.json if r["alertname"] == ALERT and r["status"] == "firing"]


def cycling(stack: RunningStack) -> bool:
    """The bot's refused likes go round: enough messages delivered 5+ times to be found."""
    msgs = stack.sample("likker.actions", 200)
    counts = [int((m["properties"].get("headers") or {}).get("x-delivery-count", 0)) for m in msgs]
    return sum(c >= 5 for c in counts) >= 20


def test_friday_on_three_nodes_is_one_incident_one_run_and_nothing_is_lost(
    stack: RunningStack, tmp_path: Any
) -> None:
    cli = Cli(stack, tmp_path)
    instances = [f"127.0.0.1:{n.rabbitmq_prometheus}" for n in stack.settings.broker_nodes]
    assert len(instances) == 3
    # 10,000 (user, post) pairs, more than the human likes sent: every 202 must be a row.
    pop = stack.population(users=100, posts=100, friday=True)
    assert pop.bot is not None and pop.bot.bot_id is not None
    join = stack.load_in_background(
        pop, scenario="friday", rate=150, duration_s=75, bot_share=0.5, concurrency=16
    )
    try:
        assert wait_for(lambda: cycling(stack), 60, 2), stack.sample("likker.actions", 20)

        # Node 1's alert first: its run starts. Then all three, which Alertmanager sends in
        # the group's next notification, while the run runs. (Should Prometheus's own rule
        # fire meanwhile, its alerts have these very labels: Alertmanager merges them.)
        post_alerts(stack, disk_alert(stack, instances[0]))
        assert wait_for(lambda: disk_rows(cli), 60, 1), cli("webhook", "log").stdout
        post_alerts(stack, *(disk_alert(stack, i) for i in instances))
        rows = wait_for(lambda: (r := disk_rows(cli)) and len(r) == 3 and r, 90, 2)
        assert rows, disk_rows(cli)
        run = wait_for(lambda: _finished_run(cli), 300, 3)
    finally:
        report = join()
    rows = disk_rows(cli)
    assert run, json.dumps(rows, indent=1)
    assert run["runbook"] == "disk-full" and run["mode"] == "enforce"
    assert run["outcome"] == "ok", json.dumps(run["detail"], indent=1)
    assert run["labels"]["instance"] in instances

    # One row per node's alert; the others are the same incident, naming the one run.
    assert sorted(r["labels"]["instance"] for r in rows) == sorted(instances), rows
    others = [r for r in rows if r["id"] != run["id"]]
    assert [r["outcome"] for r in others] == [SAME_INCIDENT, SAME_INCIDENT], others
    assert all(r["detail"]["incident_run"] == run["id"] for r in others), others
    assert len({r["alert"] for r in rows}) == 3  # three alerts (fingerprints), not resends

    # Each step ran once, for real, under the run's alert.
    steps = disk_full_ran_once(cli, run["alert"])
    assert steps["bots block"]["params"]["bot"] == pop.bot.bot_id
    for other in others:  # nothing ran under the other nodes' alerts
        assert cli("audit", "--alert", other["alert"], "--json").json["entries"] == []

    # The culprit is blocked at the gateway; every normal 202 is stored exactly once.
    assert stack.like(pop.posts[0], pop.bot.token).status_code == 403
    assert report.accepted["user"], report.as_json()
    stored = stack.wait_stored(report.accepted["user"])
    missing = set(report.accepted["user"]) - set(stored)
    assert not missing, f"{len(missing)} likes answered 202 were not stored"
    assert set(stored.values()) == {1}, "a like stored twice"
    assert stack.rows_for_bot(pop.bot.bot_id) == 0
    # The bot's accepted likes are all in the DLQ (a move may duplicate, never lose).
    assert report.accepted["bot"], report.as_json()
    dead = set(drain_ids(stack.settings.amqp_url, "likker.actions.dlq"))
    assert set(report.accepted["bot"]) <= dead
    drained = wait_for(lambda: stack.queue("likker.actions").get("messages", 0) == 0, 30, 1)
    assert drained, stack.sample("likker.actions", 20)


def _finished_run(cli: Cli) -> dict[str, Any] | None:
    """The webhook's one disk-full run (not a same-incident row), once it finished."""
    runs = [r for r in disk_rows(cli) if r["outcome"] != SAME_INCIDENT]
    assert len(runs) <= 1, runs
    return runs[0] if runs and runs[0]["outcome"] not in ("queued", "running") else None
