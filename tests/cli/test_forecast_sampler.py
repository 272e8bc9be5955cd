"""`forecast --source sampler`: the whole forecast from the management API, no broker.

The sampler polls `/api/nodes` and keeps each reading in the state dir's SQLite; the
redelivery figures are the actions queue's object (`/api/queues/%2F/likker.actions`). Neither
needs AMQP (AMQP refuses here). Forecasts that need minutes of a disk filling are
tests/stack/test_forecast.py.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from likkerctl.core import contract
from stack import procs
from tests.cli.conftest import Runner
from tests.cli.replay import ReplayServer

ACTIONS_PATH = f"/api/queues/%2F/{contract.ACTIONS_QUEUE}"
FORECAST_KEYS = {
    "source",
    "fallback_reason",
    "window_s",
    "answer",
    "nodes",
    "writers",
    "writers_note",
    "redeliveries",
}
QUEUES_PATH = "/api/queues/%2F"


def stored_samples(state_dir: Path) -> list[tuple[str, float, float]]:
    with sqlite3.connect(state_dir / "likkerctl.db") as db:
        return list(db.execute('SELECT node, free, "limit" FROM disk_samples ORDER BY t'))


def avg_rate(queue: dict[str, Any], key: str) -> float:
    return float(queue["message_stats"][f"{key}_details"]["avg_rate"])


def test_sampler_forecast_keeps_every_poll_and_answers_from_the_management_api(
    run: Runner, replay: ReplayServer, env: dict[str, str | None]
) -> None:
    nodes = replay.recordings.body("/api/nodes")
    docs = []
    for _ in range(5):
        done = run("forecast", "--source", "sampler", "--json")
        assert done.code == 0, done.stderr
        docs.append(done.json)

    doc = docs[-1]
    assert set(doc) == FORECAST_KEYS
    assert (doc["source"], doc["fallback_reason"], doc["window_s"]) == ("sampler", None, 600.0)
    assert set(doc["nodes"]) == {n["name"] for n in nodes} == {"likker@localhost"}
    node = nodes[0]
    answer = doc["nodes"]["likker@localhost"]
    assert doc["answer"] == answer
    assert answer["headroom"] == node["disk_free"] - node["disk_free_limit"]
    # Five equal readings within a second: honest, not an ETA.
    assert (answer["status"], answer["note"]) == ("not enough data", "need 4 samples over 15s")

    # Each run stored its reading in the state dir, and the later runs fitted the earlier ones.
    state = Path(str(env["LIKKER_STATE_DIR"]))
    assert (
        stored_samples(state)
        == [(node["name"], float(node["disk_free"]), float(node["disk_free_limit"]))] * 5
    )
    assert docs[0]["answer"]["points"] == 1
    assert docs[-1]["answer"]["points"] > 1

    actions = replay.recordings.body(ACTIONS_PATH)
    redeliver, deliver = avg_rate(actions, "redeliver"), avg_rate(actions, "deliver_get")
    assert redeliver > 0 and deliver > 0  # the recording has the incident's cycling
    assert doc["redeliveries"] == {
        "queue": contract.ACTIONS_QUEUE,
        "redeliver_rate": redeliver,
        "deliver_rate": deliver,
        "redeliver_share": round(redeliver / deliver, 4),
    }
    # Only the management API was asked; nothing of Prometheus (it is not the source).
    assert set(replay.paths_seen()) == {"/api/nodes", ACTIONS_PATH, QUEUES_PATH}


def test_sampler_forecast_names_the_log_writers_from_management_rates_as_a_proxy(
    run: Runner, replay: ReplayServer
) -> None:
    doc = run("forecast", "--source", "sampler", "--json").json
    queues = {q["name"]: q for q in replay.recordings.body(QUEUES_PATH) if q["type"] == "quorum"}
    rates = {
        name: sum(
            avg_rate(q, k)
            for k in ("publish", "redeliver", "ack")
            if f"{k}_details" in q["message_stats"]
        )
        for name, q in queues.items()
    }
    total = sum(rates.values())
    assert doc["writers_note"] == (
        "the disk figures came from the sampler: management API rates (publish + redeliver + "
        "ack msg/s) as a proxy"
    )
    # The recording's incident: the actions queue cycles, the DLQ only receives.
    assert [w["queue"] for w in doc["writers"]] == [contract.ACTIONS_QUEUE, contract.DLQ_QUEUE]
    for w in doc["writers"]:
        assert w == {
            "node": "likker@localhost",
            "vhost": "/",
            "queue": w["queue"],
            "entries_per_s": round(rates[w["queue"]], 1),
            "retained": None,
            "share": round(rates[w["queue"]] / total, 4),
            "source": "management (proxy)",
        }
    assert doc["writers"][0]["share"] > 0.8

    human = run("forecast", "--source", "sampler").stdout.splitlines()
    actions = doc["writers"][0]
    at = human.index("log writers (management (proxy)):")
    assert human[at + 1].startswith(
        f"  likker@localhost: likker.actions {actions['share']:.0%} "
        f"({actions['entries_per_s']:,.0f} msg/s), likker.actions.dlq "
    )
    assert human[at + 2] == f"  {doc['writers_note']}"


def test_sampler_forecast_of_a_node_at_its_disk_limit_says_publishers_are_blocked(
    run: Runner, replay: ReplayServer
) -> None:
    nodes = replay.recordings.body("/api/nodes")
    for node in nodes:
        node["disk_free"] = node["disk_free_limit"] - 5_000_000
        node["disk_free_alarm"] = True
    replay.override("/api/nodes", nodes)

    doc = run("forecast", "--source", "sampler", "--json").json
    assert doc["answer"]["status"] == "at limit"
    assert (doc["answer"]["eta_s"], doc["answer"]["headroom"]) == (0.0, -5_000_000.0)

    human = run("forecast", "--source", "sampler")
    assert human.code == 0, human.stderr
    first = human.stdout.splitlines()[0]
    assert first == "disk: at the limit: the broker is blocking publishers (headroom -5 MB)"


def test_sampler_forecast_prints_the_redelivery_rate_and_share_for_people(
    run: Runner, replay: ReplayServer
) -> None:
    actions = replay.recordings.body(ACTIONS_PATH)
    redeliver, deliver = avg_rate(actions, "redeliver"), avg_rate(actions, "deliver_get")
    done = run("forecast", "--source", "sampler")
    assert done.code == 0, done.stderr
    assert (
        f"redeliveries on likker.actions: {redeliver:,.0f}/s, {redeliver / deliver:.0%} of "
        "deliveries"
    ) in done.stdout.splitlines()
    assert "  source: sampler" in done.stdout.splitlines()


def test_auto_forecast_falls_back_to_the_sampler_saying_why_prometheus_was_not_used(
    run: Runner, replay: ReplayServer
) -> None:
    # Prometheus at the replay server: its range query is refused (401, as the management
    # API refuses a request without credentials), at once.
    done = run("forecast", "--json", env={"LIKKER_PROMETHEUS_URL": replay.url})
    assert done.code == 0, done.stderr
    assert done.json["source"] == "sampler"
    assert done.json["fallback_reason"] == (
        f"Prometheus at {replay.url} refused the request: HTTP 401"
    )
    assert replay.paths_seen()[0] == "/api/v1/query_range"


def test_prometheus_forecast_when_prometheus_refuses_is_exit_4_not_a_fallback(
    run: Runner, replay: ReplayServer
) -> None:
    # Prometheus at the replay server again: credentials refused, a fix in the profile.
    done = run(
        "forecast", "--source", "prometheus", "--json", env={"LIKKER_PROMETHEUS_URL": replay.url}
    )
    assert done.code == 4
    assert done.stdout == ""
    assert done.stderr == f"error: Prometheus at {replay.url} refused the request: HTTP 401\n"
    assert "/api/nodes" not in replay.paths_seen()  # no sampler behind its back


def test_prometheus_forecast_when_prometheus_is_down_is_exit_3_at_once(run: Runner) -> None:
    closed = procs.free_port()
    url = f"http://127.0.0.1:{closed}"
    done = run("forecast", "--source", "prometheus", env={"LIKKER_PROMETHEUS_URL": url})
    assert done.code == 3
    assert done.stderr == f"error: Prometheus at {url} did not answer: ConnectionError\n"


def test_an_unknown_forecast_source_is_exit_2(run: Runner) -> None:
    done = run("forecast", "--source", "crystal-ball")
    assert done.code == 2
    assert done.stderr == "error: --source must be one of auto, prometheus, sampler\n"
