"""Which queues write the broker's log: ranking, shares per node, the management proxy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from likkerctl.core import readable
from likkerctl.core.disk.attribution import PROMETHEUS, PROXY, management_rates, rank

RECORDED_QUEUES = (
    Path(__file__).parent.parent / "cli" / "recordings" / "api_queues_default-vhost.json"
)


def test_writers_are_ranked_by_entries_with_their_share_of_their_own_node() -> None:
    rates = {
        ("n1", "/", "likker.actions"): 1500.0,
        ("n1", "/", "likker.actions.dlq"): 500.0,
        ("n2", "/", "likker.actions"): 90.0,
        ("n2", "/", "other"): 10.0,
    }
    retained = {("n1", "/", "likker.actions"): 120_000.0, ("n2", "/", "other"): 3.0}
    rows = rank(rates, retained, PROMETHEUS)
    assert [(w.node, w.queue) for w in rows] == [
        ("n1", "likker.actions"),
        ("n1", "likker.actions.dlq"),
        ("n2", "likker.actions"),
        ("n2", "other"),
    ]
    assert [w.share for w in rows] == [0.75, 0.25, 0.9, pytest.approx(0.1)]
    assert rows[0].retained == 120_000.0 and rows[1].retained is None
    assert {w.source for w in rows} == {PROMETHEUS}
    assert rows[0].as_json() == {
        "node": "n1",
        "vhost": "/",
        "queue": "likker.actions",
        "entries_per_s": 1500.0,
        "retained": 120_000.0,
        "share": 0.75,
        "source": "prometheus",
    }


def test_an_idle_node_has_no_shares_and_a_busy_one_lists_only_its_busiest() -> None:
    rates = {("idle", "/", "q"): 0.0, **{("busy", "/", f"q{i}"): float(i) for i in range(1, 13)}}
    rows = rank(rates, None, PROMETHEUS, per_node=3)
    assert [w.queue for w in rows if w.node == "busy"] == ["q12", "q11", "q10"]
    assert [(w.queue, w.share) for w in rows if w.node == "idle"] == [("q", 0.0)]


def test_a_counter_reset_does_not_make_a_negative_share() -> None:
    rows = rank({("n", "/", "a"): -3.0, ("n", "/", "b"): 1.0}, None, PROMETHEUS)
    assert [(w.queue, w.entries_per_s, w.share) for w in rows] == [("b", 1.0, 1.0), ("a", 0, 0)]


def test_the_proxy_counts_quorum_queues_on_each_member_from_a_real_recording() -> None:
    queues = json.loads(RECORDED_QUEUES.read_text())
    rates = management_rates(queues)
    # Recorded during the Friday incident: only the two quorum queues, on their one member.
    assert set(rates) == {
        ("likker@localhost", "/", "likker.actions"),
        ("likker@localhost", "/", "likker.actions.dlq"),
    }
    actions = next(q for q in queues if q["name"] == "likker.actions")["message_stats"]
    assert rates[("likker@localhost", "/", "likker.actions")] == pytest.approx(
        sum(actions[f"{k}_details"]["avg_rate"] for k in ("publish", "redeliver", "ack"))
    )
    top = rank(rates, None, PROXY)[0]
    assert (top.queue, top.source) == ("likker.actions", "management (proxy)")


def test_a_queue_with_three_members_writes_on_three_nodes() -> None:
    queue = {
        "name": "q",
        "vhost": "v",
        "type": "quorum",
        "node": "n1",
        "members": ["n1", "n2", "n3"],
        "message_stats": {"publish_details": {"avg_rate": 4.0}},
    }
    classic = {"name": "c", "type": "classic", "node": "n1", "message_stats": {}}
    assert management_rates([queue, classic]) == {
        ("n1", "v", "q"): 4.0,
        ("n2", "v", "q"): 4.0,
        ("n3", "v", "q"): 4.0,
    }


def test_a_writer_reads_in_entries_or_in_messages_for_the_proxy() -> None:
    row = {"queue": "likker.actions", "share": 0.973, "entries_per_s": 2410.4, "retained": 1234.0}
    assert readable.writer(row) == "likker.actions 97% (2,410 entries/s, 1,234 retained)"
    proxy = {**row, "retained": None}
    assert readable.writer(proxy) == "likker.actions 97% (2,410 msg/s)"
