"""Declares the broker objects of the message contract (DESIGN §4), idempotently."""

from __future__ import annotations

import pika
from pika.adapters.blocking_connection import BlockingChannel

from likkerctl.core import contract

# Stack-internal: the auth service announces bot blocks here so gateways drop cached tokens.
AUTH_EVENTS_EXCHANGE = "likker.auth.events"


def declare(channel: BlockingChannel) -> None:
    channel.exchange_declare(contract.ACTIONS_EXCHANGE, exchange_type="direct", durable=True)
    channel.exchange_declare(contract.DLX_EXCHANGE, exchange_type="fanout", durable=True)
    channel.exchange_declare(contract.CONTROL_EXCHANGE, exchange_type="fanout", durable=True)
    channel.exchange_declare(AUTH_EVENTS_EXCHANGE, exchange_type="fanout", durable=True)
    channel.queue_declare(
        contract.ACTIONS_QUEUE, durable=True, arguments=contract.ACTIONS_QUEUE_ARGS
    )
    channel.queue_bind(
        contract.ACTIONS_QUEUE, contract.ACTIONS_EXCHANGE, routing_key=contract.ACTIONS_ROUTING_KEY
    )
    channel.queue_declare(contract.DLQ_QUEUE, durable=True, arguments=contract.DLQ_QUEUE_ARGS)
    channel.queue_bind(contract.DLQ_QUEUE, contract.DLX_EXCHANGE, routing_key="")


def declare_at(amqp_url: str) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        declare(conn.channel())
    finally:
        conn.close()
