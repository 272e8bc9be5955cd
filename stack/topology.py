"""Declares the broker objects of the message contract (DESIGN §4), idempotently."""

from __future__ import annotations

import logging
from typing import Any

from pika.adapters.blocking_connection import BlockingChannel

from likkerctl.core import contract
from likkerctl.core.contract.nodes import Nodes

log = logging.getLogger("likker.topology")

# Stack-internal: the auth service announces bot blocks here so gateways drop cached tokens.
AUTH_EVENTS_EXCHANGE = "likker.auth.events"


def quorum_args(base: dict[str, Any], members: int | None) -> dict[str, Any]:
    """A quorum queue's arguments asking for `members` replicas (one per node), if given."""
    return base if members is None else {**base, "x-quorum-initial-group-size": members}


def declare(channel: BlockingChannel, members: int | None = None) -> None:
    channel.exchange_declare(contract.ACTIONS_EXCHANGE, exchange_type="direct", durable=True)
    channel.exchange_declare(contract.DLX_EXCHANGE, exchange_type="fanout", durable=True)
    channel.exchange_declare(contract.CONTROL_EXCHANGE, exchange_type="fanout", durable=True)
    channel.exchange_declare(AUTH_EVENTS_EXCHANGE, exchange_type="fanout", durable=True)
    channel.queue_declare(
        contract.ACTIONS_QUEUE,
        durable=True,
        arguments=quorum_args(contract.ACTIONS_QUEUE_ARGS, members),
    )
    channel.queue_bind(
        contract.ACTIONS_QUEUE, contract.ACTIONS_EXCHANGE, routing_key=contract.ACTIONS_ROUTING_KEY
    )
    channel.queue_declare(
        contract.DLQ_QUEUE, durable=True, arguments=quorum_args(contract.DLQ_QUEUE_ARGS, members)
    )
    channel.queue_bind(contract.DLQ_QUEUE, contract.DLX_EXCHANGE, routing_key="")


def declare_at(amqp_urls: str | list[str], members: int | None = None) -> None:
    conn = Nodes(amqp_urls, "topology", log).connect()
    try:
        declare(conn.channel(), members)
    finally:
        conn.close()
