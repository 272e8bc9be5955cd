"""How a queue may be sampled: its type, the broker's version, its effective delivery-limit."""

from __future__ import annotations

import pytest

from likkerctl.core.messages import limits
from likkerctl.core.messages.limits import QueueFacts, effective_delivery_limit, plan_sampling


@pytest.mark.parametrize(
    ("qtype", "version", "args", "policy", "limit"),
    [
        ("quorum", (3, 10, 8), {}, {}, None),  # no default before 4.0
        ("quorum", (4, 0, 1), {}, {}, 20),  # 4.0's default
        ("quorum", (3, 10, 8), {"x-delivery-limit": 3}, {}, 3),
        ("quorum", (3, 10, 8), {}, {"delivery-limit": 5}, 5),
        ("quorum", (3, 10, 8), {"x-delivery-limit": 3}, {"delivery-limit": 5}, 3),  # lower wins
        ("quorum", (4, 1, 0), {"x-delivery-limit": -1}, {"delivery-limit": 5}, 5),
        ("quorum", (4, 1, 0), {"x-delivery-limit": -1}, {}, None),  # negative: no limit
        ("classic", (4, 1, 0), {"x-delivery-limit": 3}, {}, None),  # quorum queues only
        ("stream", (4, 1, 0), {}, {}, None),
    ],
)
def test_effective_delivery_limit_follows_rabbitmqs_rules(
    qtype: str, version: tuple[int, int, int], args: dict, policy: dict, limit: int | None
) -> None:
    assert effective_delivery_limit(qtype, version, args, policy) == limit


def facts(qtype: str, version: str, **queue: object) -> QueueFacts:
    return QueueFacts.of({"name": "q", "type": qtype, **queue}, version)


def test_streams_are_read_by_offset_on_any_version() -> None:
    for version in ("3.10.8", "4.2.0"):
        assert plan_sampling(facts("stream", version), "no node").mode == limits.STREAM


def test_a_reachable_node_reads_quorum_queues_in_place_where_the_record_is_known() -> None:
    limited = facts("quorum", "3.10.8", arguments={"x-delivery-limit": 3})
    plan = plan_sampling(limited, None)
    assert plan.mode == limits.NODE_PEEK and plan.effect.startswith("none")
    # 3.13 changed the message record: no in-place read, and the limit then refuses.
    assert (
        plan_sampling(facts("quorum", "3.13.1", arguments={"x-delivery-limit": 3}), None).mode
        is None
    )


def test_a_limit_that_counts_returns_refuses_sampling_with_the_reason() -> None:
    plan = plan_sampling(facts("quorum", "3.10.8", arguments={"x-delivery-limit": 3}), "no node")
    assert plan.mode is None
    assert "delivery-limit 3 on RabbitMQ 3.10.8" in plan.why and "no node" in plan.why
    default = plan_sampling(facts("quorum", "4.1.2"), "no node")  # 4.0's default of 20
    assert default.mode is None and "delivery-limit 20" in default.why
    # From 4.3 a nack does not count: take-and-return is allowed, and says what it does.
    later = plan_sampling(facts("quorum", "4.3.0"), "no node")
    assert later.mode == limits.REQUEUE and "x-acquired-count" in later.effect


def test_queues_without_a_counting_limit_are_taken_and_returned() -> None:
    assert plan_sampling(facts("classic", "3.10.8"), "no node").mode == limits.REQUEUE
    unlimited = plan_sampling(facts("quorum", "3.10.8"), "no node")
    assert unlimited.mode == limits.REQUEUE and "x-delivery-count rises" in unlimited.effect
    assert limits.parse_version("3.10.8") == (3, 10, 8)
    assert limits.parse_version("4.1.0-rc.1") == (4, 1, 0)


def test_status_ranks_any_queue_by_trouble() -> None:
    from likkerctl.core.status import by_trouble, trouble

    calm = {"name": "a.calm", "ready": 5, "consumers": 2, "ack_rate": 10.0, "publish_rate": 10.0}
    orphan = {"name": "b.orphan", "ready": 40, "consumers": 0}
    growing = {
        "name": "c.growing",
        "ready": 9,
        "consumers": 1,
        "publish_rate": 50.0,
        "ack_rate": 5.0,
    }
    looping = {"name": "d.loop", "ready": 100, "consumers": 1, "redeliver_rate": 900.0,
               "deliver_rate": 950.0, "ack_rate": 50.0}  # fmt: skip
    assert trouble(calm) == (0, [])
    assert trouble(looping)[0] == 3 and "more than it acks" in trouble(looping)[1][0]
    assert [r["name"] for r in by_trouble([calm, orphan, growing, looping])] == [
        "d.loop",
        "c.growing",
        "b.orphan",
        "a.calm",
    ]


def test_the_node_peek_reads_erlang_binaries_as_rabbitmqctl_prints_them() -> None:
    from likkerctl.core.clients.node import _binary_text, _erl_bin, configured
    from likkerctl.core.profile import Profile

    printed = '<<"0 AA== bGlt oIA= e30=;3 AA==\\n"\n  " bGlt oIA= e30=">>\n'
    assert _binary_text(printed) == "0 AA== bGlt oIA= e30=;3 AA==\n bGlt oIA= e30="
    assert _erl_bin("/é") == "<<47,195,169>>"  # names travel as bytes, never quoted
    assert "no node configured" in str(configured(Profile(name="x")))
    missing = Profile(name="x", node="n@h", erlang_cookie_file="/nonexistent/cookie")
    assert "no readable Erlang cookie" in str(configured(missing))
