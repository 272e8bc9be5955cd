"""How likkerctl may sample a queue without harm: queue type, broker version, delivery limit.

Pure decisions, from the management API's queue object and the broker's version:

- a **stream** is read by offset from the first message: nothing changes;
- a **quorum** queue is read in place through the node's CLI tools when likkerctl can reach
  the node (`rabbitmq-queues peek`'s Ra command): nothing changes;
- otherwise messages are taken and returned (basic.get, then basic.nack requeue). On a
  quorum queue every such return counts toward its delivery-limit on RabbitMQ 3.10 to 4.2
  (4.0 sets a default of 20), so a queue with an effective limit is then not sampled at
  all: likkerctl refuses with the reason. From 4.3 a nack no longer counts (only
  x-acquired-count rises), so taking and returning is safe there.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_LIMIT_FROM = (4, 0)  # quorum queues get delivery-limit 20 by default
DEFAULT_LIMIT = 20
NACK_UNCOUNTED_FROM = (4, 3)  # basic.nack no longer counts toward the limit
# Our in-place read decodes the classic message record; 3.13 replaced it (message
# containers), so later brokers are not read that way (`node.peek` refuses other records).
NODE_PEEK_BEFORE = (3, 13)

STREAM = "stream (read by offset)"
NODE_PEEK = "node peek (rabbitmq-queues peek)"
REQUEUE = "take and return (basic.get, nack requeue)"


def parse_version(text: str | None) -> tuple[int, int, int]:
    nums = [int(n) for n in re.findall(r"\d+", text or "")[:3]]
    major, minor, patch = [*nums, 0, 0, 0][:3]
    return major, minor, patch


def effective_delivery_limit(
    queue_type: str,
    version: tuple[int, int, int],
    arguments: Mapping[str, Any] | None,
    policy: Mapping[str, Any] | None,
) -> int | None:
    """The delivery-limit a quorum queue applies; None when it has none (or is not quorum).

    Argument and policy: the lower wins, a negative one means no limit (RabbitMQ's own
    rule, rabbit_quorum_queue:resolve_delivery_limit). From 4.0 an unset limit is 20.
    """
    if queue_type != "quorum":
        return None
    arg = _int((arguments or {}).get("x-delivery-limit"))
    pol = _int((policy or {}).get("delivery-limit"))
    limit: int | None
    if arg is not None and pol is not None:
        limit = max(arg, pol) if arg < 0 or pol < 0 else min(arg, pol)
    else:
        limit = arg if arg is not None else pol
    if limit is None:
        return DEFAULT_LIMIT if version >= DEFAULT_LIMIT_FROM else None
    return None if limit < 0 else limit


def _int(value: Any) -> int | None:
    try:
        return None if value is None or isinstance(value, bool) else int(value)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class QueueFacts:
    name: str
    type: str  # classic | quorum | stream
    version: tuple[int, int, int]
    delivery_limit: int | None

    @classmethod
    def of(cls, queue: Mapping[str, Any], broker_version: str) -> QueueFacts:
        version = parse_version(broker_version)
        qtype = str(queue.get("type") or "classic")
        policy = queue.get("effective_policy_definition")
        limit = effective_delivery_limit(
            qtype, version, queue.get("arguments"), policy if isinstance(policy, dict) else {}
        )
        return cls(str(queue.get("name")), qtype, version, limit)

    @property
    def version_text(self) -> str:
        return ".".join(str(n) for n in self.version)

    @property
    def returns_count(self) -> bool:
        """Whether a nack-requeue counts toward this queue's delivery-limit."""
        return self.delivery_limit is not None and self.version < NACK_UNCOUNTED_FROM


@dataclass(frozen=True)
class SamplingPlan:
    mode: str | None  # STREAM, NODE_PEEK, REQUEUE; None: refused
    why: str
    effect: str


def plan_sampling(facts: QueueFacts, node_unreachable: str | None) -> SamplingPlan:
    """How to sample `facts`' queue; `node_unreachable` says why the CLI path is closed."""
    if facts.type == "stream":
        return SamplingPlan(STREAM, "a stream is read by offset", "none: nothing is consumed")
    if facts.type == "quorum" and node_unreachable is None and facts.version < NODE_PEEK_BEFORE:
        return SamplingPlan(
            NODE_PEEK, "the node is reachable by RabbitMQ's CLI", "none: messages read in place"
        )
    if facts.type != "quorum":
        requeue_effect = "each sampled message is marked redelivered and goes back in place"
    elif facts.version < NACK_UNCOUNTED_FROM:
        requeue_effect = (
            "each sampled message is marked redelivered, its x-delivery-count rises by one "
            "and it goes back at the tail"
        )
    else:
        requeue_effect = (
            "each sampled message is marked redelivered and its x-acquired-count rises by "
            "one (a nack does not count toward the delivery-limit from RabbitMQ 4.3)"
        )
    if facts.returns_count:
        closed = (
            f"; side-effect-free peek unavailable: {node_unreachable}" if (node_unreachable) else ""
        )
        return SamplingPlan(
            None,
            f"queue {facts.name!r} has delivery-limit {facts.delivery_limit} on RabbitMQ "
            f"{facts.version_text}, where each sample's return counts toward it, so sampling "
            f"could dead-letter (or drop) messages{closed}",
            requeue_effect,
        )
    why = "a classic queue" if facts.type == "classic" else "no delivery-limit counts nacks"
    if facts.type == "quorum" and node_unreachable:
        why += f"; side-effect-free peek unavailable: {node_unreachable}"
    return SamplingPlan(REQUEUE, why, requeue_effect)
