"""`operations` planning against the replayed management API and auth service, up to AMQP.

A move's plan checks both queues and chooses its engine over the management API, then counts
the source's ready messages over AMQP (`rabbit.ready_count`); here AMQP refuses, so a plan
that gets that far ends in Unreachable for the AMQP URL — the boundary of this layer. Plans
that do reach AMQP (counts, the sampled estimate) are tested against a broker in
tests/ops/test_moves.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from likkerctl.core import contract, operations
from likkerctl.core.clients import rabbit
from likkerctl.core.errors import Conflict, InvalidInput, NotFound, Unreachable
from likkerctl.core.messages import predicate
from likkerctl.core.profile import Profile
from tests.cli.replay import ReplayServer

ACTIONS, DLQ = contract.ACTIONS_QUEUE, contract.DLQ_QUEUE


@pytest.fixture
def profile(replay: ReplayServer, closed_port_number: int, tmp_path: Path) -> Profile:
    return Profile(
        name="replay",
        amqp_url=f"amqp://guest:guest@127.0.0.1:{closed_port_number}/",
        mgmt_url=replay.url,
        auth_url=replay.url,
        admin_token=replay.admin_token,
        state_dir=str(tmp_path),
    )


def no_shovel_plugin(replay: ReplayServer) -> None:
    nodes = replay.recordings.body("/api/nodes")
    for node in nodes:
        node["enabled_plugins"].remove(rabbit.SHOVEL_PLUGIN)
    replay.override("/api/nodes", nodes)


def test_a_move_plan_checks_both_queues_then_needs_amqp_for_the_count(
    profile: Profile, replay: ReplayServer, closed_port_number: int
) -> None:
    with pytest.raises(Unreachable) as caught:
        operations.QueueMove(ACTIONS, DLQ, "bot=1").plan(profile, dry_run=True)
    assert caught.value.url == f"amqp://guest:***@127.0.0.1:{closed_port_number}/"
    assert replay.paths_seen() == [
        "/api/queues/%2F/likker.actions",
        "/api/queues/%2F/likker.actions.dlq",
        "/api/nodes",  # auto engine: is the shovel plugin there?
    ]


@pytest.mark.parametrize(
    ("source", "destination"), [("no.such.queue", DLQ), (ACTIONS, "no.such.queue")]
)
def test_a_move_plan_with_an_unknown_queue_raises_not_found(
    profile: Profile, replay: ReplayServer, source: str, destination: str
) -> None:
    with pytest.raises(NotFound, match=r"^no queue 'no.such.queue' in vhost '/'$"):
        operations.QueueMove(source, destination).plan(profile, dry_run=True)
    assert "/api/nodes" not in replay.paths_seen()  # stopped before choosing an engine


def test_a_move_into_its_own_source_is_refused_when_made(replay: ReplayServer) -> None:
    with pytest.raises(InvalidInput, match="same queue"):
        operations.QueueMove(ACTIONS, ACTIONS)
    assert replay.seen == []


def test_a_bad_predicate_is_refused_when_the_move_is_made_pointing_at_the_column() -> None:
    with pytest.raises(predicate.PredicateError) as caught:
        operations.QueueMove(ACTIONS, DLQ, "bot=42 and deliverys>3")
    assert caught.value.pos == 11
    assert isinstance(caught.value, InvalidInput) and caught.value.field == "where"


def test_forcing_the_broker_engine_on_a_predicate_it_cannot_bind_raises_invalid_input(
    profile: Profile,
) -> None:
    move = operations.QueueMove(ACTIONS, DLQ, "deliveries>3", engine="broker")
    with pytest.raises(InvalidInput, match="--engine broker cannot run --where"):
        move.plan(profile, dry_run=True)


def test_forcing_the_broker_engine_with_a_limit_and_a_predicate_raises_invalid_input(
    profile: Profile,
) -> None:
    move = operations.QueueMove(ACTIONS, DLQ, "bot=1", limit=10, engine="broker")
    with pytest.raises(InvalidInput, match="--limit with a predicate needs likkerctl"):
        move.plan(profile, dry_run=True)


def test_forcing_the_broker_engine_without_the_shovel_plugin_raises_conflict(
    profile: Profile, replay: ReplayServer
) -> None:
    no_shovel_plugin(replay)
    move = operations.QueueMove(ACTIONS, DLQ, "bot=1", engine="broker")
    with pytest.raises(Conflict, match="no rabbitmq_shovel plugin enabled"):
        move.plan(profile, dry_run=True)


def test_an_unknown_engine_raises_invalid_input(profile: Profile) -> None:
    with pytest.raises(InvalidInput, match="--engine must be one of auto, broker, client"):
        operations.QueueMove(ACTIONS, DLQ, engine="fast").plan(profile, dry_run=True)


def test_auto_engine_is_the_broker_for_a_header_predicate_when_the_plugin_is_listed(
    profile: Profile, replay: ReplayServer
) -> None:
    mgmt = rabbit.Management(profile)
    header = predicate.parse("bot=1 or user in (3, 4)")
    assert operations.choose_engine("auto", header, None, mgmt) == (
        "broker",
        "header predicate: the broker selects at its own speed",
    )
    assert operations.choose_engine("auto", None, None, mgmt)[0] == "broker"
    no_shovel_plugin(replay)
    assert operations.choose_engine("auto", header, None, mgmt) == (
        "client",
        "the broker has no rabbitmq_shovel plugin",
    )


def test_auto_engine_is_the_client_for_a_predicate_on_message_state(profile: Profile) -> None:
    mgmt = rabbit.Management(profile)
    says = {
        "deliveries>3": "'deliveries >': comparisons other than = and in",
        "bot!=1": "'bot !=': comparisons other than = and in",
        "redelivered=true": "'redelivered' is counted by the broker per delivery",
        "bot=none": "cannot match an absent header",
        "body.tenant=acme": "'body.tenant' is in the message body",
        'header."x-tenant"=acme': "ignores x- headers",
    }
    for text, why in says.items():
        engine, reason = operations.choose_engine("auto", predicate.parse(text), None, mgmt)
        assert engine == "client", text
        assert why in reason, (text, reason)


def test_a_purge_plan_of_an_unknown_queue_raises_not_found(profile: Profile) -> None:
    purge = operations.Purge.archived(profile, "no.such.queue")
    with pytest.raises(NotFound):
        purge.plan(profile, dry_run=True)


def test_a_bot_block_plan_reads_the_bot_from_the_auth_service(
    profile: Profile, replay: ReplayServer
) -> None:
    blocked = replay.recordings.recorded["blocked_bot"]
    recorded = replay.recordings.body(f"/v1/bots/{blocked}")
    plan = operations.BotCommand("unblock", blocked).plan(profile, dry_run=True)
    assert plan == {
        "command": "unblock",
        "bot": recorded,
        "summary": f"Unblock bot {blocked} (owner {recorded['user_id']}, now blocked)",
    }


def test_a_bot_block_plan_of_an_unknown_bot_raises_not_found(profile: Profile) -> None:
    with pytest.raises(NotFound, match=r"^no bot 31337$"):
        operations.BotCommand("block", 31337, "abuse").plan(profile, dry_run=True)
