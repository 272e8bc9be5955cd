"""Triage of any RabbitMQ and any message: generic fields, any queue type, safe sampling.

Against the session's stack broker (RabbitMQ 3.10), with queues of foreign-shaped
messages. The local profile reaches the stack's node (side-effect-free peek); a second
profile with the same URLs and no node shows what happens without it.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator

import pika
import pytest

from likkerctl.core import contract
from likkerctl.core.errors import NotConfigured
from likkerctl.core.profile import Profile
from likkerctl.tui.app import Dashboard
from likkerctl.tui.backend import LiveBackend
from likkerctl.tui.widgets.panel import Panel
from tests.helpers import RunningStack, drain_ids, fill_queue, wait_for
from tests.ops.conftest import Cli


def _conn(stack: RunningStack) -> pika.BlockingConnection:
    return pika.BlockingConnection(pika.URLParameters(stack.settings.amqp_url))


def held_ids(stack: RunningStack, queue: str) -> list[str]:
    """Every message id in a classic queue, read and returned (classic keeps the order)."""
    conn = _conn(stack)
    ch = conn.channel()
    ids: list[str] = []
    last = 0
    while True:
        method, props, _body = ch.basic_get(queue)
        if method is None:
            break
        ids.append(props.message_id)
        last = method.delivery_tag
    if last:
        ch.basic_nack(last, multiple=True, requeue=True)
    conn.close()
    return ids


@pytest.fixture
def tag() -> str:
    return uuid.uuid4().hex[:8]


def publish_jobs(stack: RunningStack, queue: str, count: int) -> None:
    conn = _conn(stack)
    ch = conn.channel()
    ch.queue_declare(queue, durable=True)
    ch.confirm_delivery()
    for i in range(count):
        body = {"id": i, "tenant": f"t{i % 5}", "actor": {"user_id": i % 7}}
        props = pika.BasicProperties(
            message_id=f"job-{i}",
            content_type="application/json",
            delivery_mode=2,
            headers={"kind": "resize" if i % 10 == 0 else "thumb", "x-tenant": f"t{i % 5}"},
        )
        ch.basic_publish("", queue, json.dumps(body).encode(), props)
    conn.close()


def test_500_json_jobs_rank_and_move_by_header_and_by_body_path_exactly(
    cli: Cli, ops_stack: RunningStack, tag: str
) -> None:
    jobs, parked = f"jobs.{tag}", f"jobs.{tag}.parked"
    publish_jobs(ops_stack, jobs, 500)
    conn = _conn(ops_stack)
    conn.channel().queue_declare(parked, durable=True)
    conn.close()

    by_kind = cli("top", jobs, "--by", "header.kind", "--sample", "600", "--json")
    assert by_kind.rc == 0, by_kind.stderr
    assert {r["header.kind"]: r["messages"] for r in by_kind.json["rows"]} == {
        "thumb": 450,
        "resize": 50,
    }
    assert by_kind.json["sampling"].startswith("take and return")  # a classic queue
    by_tenant = cli("top", jobs, "--by", "body.tenant", "--sample", "600", "--json")
    assert {r["body.tenant"]: r["messages"] for r in by_tenant.json["rows"]} == {
        f"t{n}": 100 for n in range(5)
    }

    # A header predicate runs in the broker; a body path on the client engine.
    header = cli("shovel", jobs, parked, "--where", 'header.kind = "resize"', "--yes", "--json")
    assert header.rc == 0, header.stderr
    assert header.json["engine"] == "broker"
    plan = cli("shovel", jobs, parked, "--where", "body.actor.user_id = 3", "--dry-run")
    assert "engine client: 'body.actor.user_id' is in the message body" in plan.stdout
    body = cli("shovel", jobs, parked, "--where", "body.actor.user_id = 3", "--yes", "--json")
    assert body.rc == 0, body.stderr
    assert body.json["engine"] == "client"

    want = {f"job-{i}" for i in range(500) if i % 10 == 0 or i % 7 == 3}
    moved, kept = held_ids(ops_stack, parked), held_ids(ops_stack, jobs)
    assert len(moved) == len(set(moved)) == len(want) and set(moved) == want
    assert len(kept) == 500 - len(want) and set(kept) == {f"job-{i}" for i in range(500)} - want

    # Marked as moved by an operator, both engines.
    peeked = cli("peek", parked, "-n", "200", "--show", "header.kind,body.actor.user_id", "--json")
    assert {m["reason"] for m in peeked.json["messages"]} == {"operator"}
    assert {m["origin"] for m in peeked.json["messages"]} == {jobs}


def test_bad_fields_are_exit_2_and_move_nothing(
    cli: Cli, ops_stack: RunningStack, tag: str
) -> None:
    jobs, parked = f"bad.{tag}", f"bad.{tag}.parked"
    conn = _conn(ops_stack)
    ch = conn.channel()
    for q in (jobs, parked):
        ch.queue_declare(q, durable=True)
    ch.confirm_delivery()
    for i in range(5):
        ch.basic_publish("", jobs, b"not json at all", pika.BasicProperties(message_id=f"p{i}"))
    conn.close()
    cases = {
        "body.tenant = acme": "is not JSON",
        "colour = red": "unknown field 'colour'",
        "header.task ~ /([/": "bad regular expression",
    }
    for where, says in cases.items():
        done = cli("shovel", jobs, parked, "--where", where, "--yes")
        assert done.rc == 2 and says in done.stderr, (where, done.stderr)
    forced = cli(
        "shovel", jobs, parked, "--where", "routing_key = x", "--engine", "broker", "--yes"
    )
    assert forced.rc == 2 and "message property" in forced.stderr
    assert len(held_ids(ops_stack, jobs)) == 5 and held_ids(ops_stack, parked) == []


def test_a_stream_is_peeked_by_offset_without_side_effects_and_cannot_be_moved(
    cli: Cli, ops_stack: RunningStack, tag: str
) -> None:
    stream, other = f"stream.{tag}", f"stream.{tag}.out"
    conn = _conn(ops_stack)
    ch = conn.channel()
    ch.queue_declare(stream, durable=True, arguments={"x-queue-type": "stream"})
    ch.queue_declare(other, durable=True)
    ch.confirm_delivery()
    for i in range(30):
        props = pika.BasicProperties(message_id=f"s{i}", headers={"task": f"t{i % 3}"})
        ch.basic_publish("", stream, b"{}", props)
    conn.close()

    first = cli("peek", stream, "-n", "10", "--json")
    second = cli("peek", stream, "-n", "10", "--json")
    assert first.rc == 0, first.stderr
    seen = [(m["message_id"], m["offset"]) for m in first.json["messages"]]
    assert seen == [(m["message_id"], m["offset"]) for m in second.json["messages"]]
    assert [i for i, _ in seen] == [f"s{i}" for i in range(10)]
    assert [o for _, o in seen] == sorted(o for _, o in seen)
    assert first.json["sampling"].startswith("stream")
    ranked = cli("top", stream, "--by", "header.task", "--json")
    assert {r["header.task"]: r["messages"] for r in ranked.json["rows"]} == {
        "t0": 10,
        "t1": 10,
        "t2": 10,
    }
    # Nothing consumed, nobody left attached. The management API's consumer count of a
    # stream lags its closed consumers by a stats interval or more: wait for both.
    info = wait_for(
        lambda: (
            (q := ops_stack.queue(stream)).get("messages") == 30 and q.get("consumers") == 0 and q
        ),
        30,
    )
    assert info, ops_stack.queue(stream)
    refused = cli("shovel", stream, other, "--yes")
    assert refused.rc == 6 and "is a stream" in refused.stderr
    assert ops_stack.queue(other).get("messages", 0) == 0


def test_repeated_top_on_a_queue_with_delivery_limit_3_never_dead_letters(
    cli: Cli, ops_stack: RunningStack, tag: str, nodeless: dict[str, str]
) -> None:
    limited, dead = f"limited.{tag}", f"limited.{tag}.dlq"
    conn = _conn(ops_stack)
    ch = conn.channel()
    ch.queue_declare(dead, durable=True, arguments={"x-queue-type": "quorum"})
    ch.queue_declare(
        limited,
        durable=True,
        arguments={
            "x-queue-type": "quorum",
            "x-delivery-limit": 3,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": dead,
        },
    )
    conn.close()
    fill_queue(ops_stack.settings.amqp_url, limited, 20, declare=False)
    for _ in range(5):  # more than the limit: each would dead-letter if it counted
        done = cli("top", limited, "--json")
        assert done.rc == 0, done.stderr
        assert done.json["sampling"].startswith("node peek") and done.json["delivery_limit"] == 3
        assert done.json["delivery_counts"]["0"] == 20 and done.json["sampled"] == 20
    # Without the node, taking and returning would count: refused, with the reason.
    refused = cli("top", limited, env=nodeless)
    assert refused.rc == 6
    assert "delivery-limit 3 on RabbitMQ 3.10" in refused.stderr
    assert "no node configured" in refused.stderr
    # The DLQ stays empty and every message is still there, undelivered.
    assert _ready(ops_stack, dead) == 0 and _ready(ops_stack, limited) == 20


def _ready(stack: RunningStack, queue: str) -> int:
    conn = _conn(stack)
    try:
        return int(conn.channel().queue_declare(queue, passive=True).method.message_count)
    finally:
        conn.close()


@pytest.fixture
def paused_takers(cli: Cli) -> Iterator[None]:
    assert cli("takers", "pause", "--yes").rc == 0
    try:
        yield
    finally:
        assert cli("takers", "resume", "--yes").rc == 0


def test_local_peek_on_the_actions_queue_leaves_delivery_counts_unchanged(
    cli: Cli, ops_stack: RunningStack, paused_takers: None, nodeless: dict[str, str]
) -> None:
    ids = fill_queue(ops_stack.settings.amqp_url, contract.ACTIONS_QUEUE, 15, declare=False)

    def counts(env: dict[str, str] | None = None) -> dict[str, int]:
        done = cli("peek", contract.ACTIONS_QUEUE, "-n", "100", "--json", env=env)
        assert done.rc == 0, done.stderr
        return {
            m["message_id"]: m["delivery_count"]
            for m in done.json["messages"]
            if m["message_id"] in ids
        }

    try:
        before = counts()
        assert len(before) == 15
        for _ in range(3):
            assert counts() == before
        # The same peek without the node takes and returns: the count rises (the test can fail).
        returned = cli("peek", contract.ACTIONS_QUEUE, "-n", "100", "--json", env=nodeless)
        assert returned.json["sampling"].startswith("take and return")
        after = counts()
        assert all(after[i] == before[i] + 1 for i in before)
    finally:
        ops_stack.purge(contract.ACTIONS_QUEUE)


def test_operator_moves_show_as_operator_and_replay_to_original_restores_them(
    cli: Cli, ops_stack: RunningStack, tag: str
) -> None:
    src, died, dlq = f"op.{tag}", f"op.{tag}.died", f"op.{tag}.dlq"
    conn = _conn(ops_stack)
    ch = conn.channel()
    ch.queue_declare(dlq, durable=True, arguments={"x-queue-type": "quorum"})
    ch.queue_declare(src, durable=True, arguments={"x-queue-type": "quorum"})
    ch.queue_declare(
        died,
        durable=True,
        arguments={"x-queue-type": "quorum", "x-dead-letter-exchange": "",
                   "x-dead-letter-routing-key": dlq},
    )  # fmt: skip
    conn.close()
    ids = fill_queue(ops_stack.settings.amqp_url, src, 40, bot_every=4, bot_id=77, declare=False)
    dead_ids = fill_queue(ops_stack.settings.amqp_url, died, 5, bot_every=0, declare=False)
    # Five messages the broker dead-letters (rejected by a consumer): x-death names `died`.
    conn = _conn(ops_stack)
    ch = conn.channel()
    for _ in range(5):
        method, _p, _b = ch.basic_get(died)
        ch.basic_reject(method.delivery_tag, requeue=False)
    conn.close()
    assert wait_for(lambda: _ready(ops_stack, dlq) == 5, 10)
    env = {"LIKKER_DLQ": dlq}
    # The bot's messages by the broker engine, user 1001's by the client engine.
    assert cli("shovel", src, dlq, "--where", "bot=77", "--yes").rc == 0
    assert cli("shovel", src, dlq, "--where", "user=1001 and bot=none", "--yes").rc == 0
    bots = {i for i, b in ids.items() if b == 77}
    listed = cli("dlq", "list", "--json", env=env)
    assert listed.rc == 0, listed.stderr
    operator = listed.json["by_reason"].get("operator", 0)
    assert operator == _ready(ops_stack, dlq) - 5 and operator > len(bots)
    assert listed.json["by_reason"]["x-death:rejected"] == 5

    only = cli("dlq", "replay", "--where", "reason=operator", "--to", "original", "--dry-run",
               env=env)  # fmt: skip
    assert only.rc == 0 and "each message goes back to the queue it came from" in only.stdout
    back = cli("dlq", "replay", "--to", "original", "--yes", "--json", env=env)
    assert back.rc == 0, back.stderr
    assert _ready(ops_stack, dlq) == 0
    # Every one back where it came from (the broker engine may leave a duplicate in the
    # source on 3.10 quorum queues: docs/CLI.md, "Known duplicates").
    assert set(drain_ids(ops_stack.settings.amqp_url, src)) == set(ids)
    assert sorted(drain_ids(ops_stack.settings.amqp_url, died)) == sorted(dead_ids)


@pytest.fixture
def bare_vhost(ops_stack: RunningStack, tag: str) -> Iterator[Profile]:
    """A vhost holding none of Likker's objects, and a profile naming only its broker URLs."""
    vhost = f"bare-{tag}"
    ops_stack.mgmt(f"vhosts/{vhost}", "PUT")
    ops_stack.mgmt(
        f"permissions/{vhost}/guest", "PUT", json={"configure": ".*", "write": ".*", "read": ".*"}
    )
    base = ops_stack.settings.amqp_url.split("?")[0].rsplit("/", 1)[0]
    profile = Profile(
        name="bare", amqp_url=f"{base}/{vhost}", mgmt_url=ops_stack.settings.management_url,
        vhost=vhost, state_dir=str(ops_stack.settings.state_dir),
    )  # fmt: skip
    try:
        yield profile
    finally:
        ops_stack.mgmt(f"vhosts/{vhost}", "DELETE")


def test_the_dashboard_on_a_bare_broker_says_not_configured_and_ranks_the_busiest_queue(
    bare_vhost: Profile,
) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(bare_vhost.amqp_url))
    ch = conn.channel()
    ch.queue_declare("orders", durable=True)
    ch.queue_declare("idle", durable=True)
    for i in range(30):
        props = pika.BasicProperties(message_id=f"o{i}", headers={"shop": f"s{i % 3}"})
        ch.basic_publish("", "orders", b"{}", props)
    conn.close()
    backend = LiveBackend(bare_vhost, offenders_by="header.shop")
    assert wait_for(lambda: backend.fetch("offenders")["sampled"] == 30, 15)
    offenders = backend.fetch("offenders")
    assert offenders["queue"] == "orders" and offenders["picked"]
    assert {r["actor"]: r["messages"] for r in offenders["actors"]} == {
        "s0": 10,
        "s1": 10,
        "s2": 10,
    }
    for part in ("takers", "bots"):
        with pytest.raises(NotConfigured):
            backend.fetch(part)
    asyncio.run(_panels(backend))


async def _panels(backend: LiveBackend) -> None:
    app = Dashboard(backend, refresh_s=60, sample_every_s=60)
    async with app.run_test(size=(140, 40)) as pilot:
        for _ in range(100):
            if all(app.parts[n].at or app.parts[n].error for n in app.parts):
                break
            await pilot.pause(0.1)
        takers = app.screen.query_one("#p-takers", Panel)
        assert "not configured" in str(takers.border_subtitle)
        assert not takers.has_class("-down")
        for panel in ("#p-queues", "#p-disk", "#p-offenders"):
            shown = app.screen.query_one(panel, Panel)
            assert not shown.has_class("-down"), (panel, shown.border_subtitle)
        offenders = app.screen.query_one("#p-offenders", Panel)
        assert "of orders by header.shop" in str(offenders.border_subtitle)
