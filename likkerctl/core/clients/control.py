"""The takers fleet over the `likker.control` fanout (DESIGN §4): status, pause, resume.

Each taker answers a command that carries `reply_to`; we use RabbitMQ's direct reply-to
(`amq.rabbitmq.reply-to`), and know how many answers to wait for from the number of queues
bound to the control exchange (one per taker).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pika

from likkerctl.core.clients import rabbit
from likkerctl.core.errors import NotFound
from likkerctl.core.profile import Profile

COMMANDS = ("status", "pause", "resume")
REPLY_TO = "amq.rabbitmq.reply-to"


def expected_takers(profile: Profile) -> int:
    mgmt = rabbit.Management(profile)
    if not mgmt.exchange_exists(profile.control_exchange):
        raise NotFound(
            f"no control exchange {profile.control_exchange!r} on the broker; "
            "are the takers deployed?",
        )
    return len(mgmt.bindings_from(profile.control_exchange))


def command(
    profile: Profile, verb: str, target: str = "*", timeout: float = 2.0
) -> list[dict[str, Any]]:
    """Send `verb` to the takers (all, or one id) and return their answers, sorted by id."""
    if verb not in COMMANDS:
        raise ValueError(verb)
    expected = expected_takers(profile) if target == "*" else 1
    conn = rabbit.connect(profile)
    answers: dict[str, dict[str, Any]] = {}
    try:
        ch = conn.channel()
        correlation = uuid.uuid4().hex

        def on_reply(_ch: Any, _method: Any, props: Any, body: bytes) -> None:
            if props.correlation_id != correlation:
                return
            try:
                state = json.loads(body)
                answers[str(state["taker_id"])] = state
            except (ValueError, KeyError, TypeError):
                pass

        ch.basic_consume(REPLY_TO, on_reply, auto_ack=True)
        ch.basic_publish(
            profile.control_exchange,
            "",
            json.dumps({"command": verb, "target": target}).encode(),
            pika.BasicProperties(
                reply_to=REPLY_TO, correlation_id=correlation, content_type="application/json"
            ),
        )
        deadline = time.monotonic() + timeout
        while len(answers) < expected and time.monotonic() < deadline:
            conn.process_data_events(time_limit=0.05)
    finally:
        if conn.is_open:
            conn.close()
    if target != "*" and target not in answers:
        raise NotFound(f"no taker {target!r} answered on {profile.control_exchange}")
    return [answers[k] for k in sorted(answers)]
