"""Sampling a queue without removing anything: peek, top offenders, dead-letter groups.

RabbitMQ has no read-without-consuming for classic or quorum queues. We consume up to N
messages with a prefetch of N, never ack them, and return them all with one
`basic.nack(multiple, requeue)`. The effect on the sampled messages, stated in the help:
they are marked `redelivered`, their quorum-queue `x-delivery-count` rises by one, a quorum
queue puts them back at its tail (measured on 3.10), and for the milliseconds of the sample
other consumers do not see them. Nothing is removed. Up to 200 messages are taken with
basic.get, one at a time, so exactly those are touched; larger samples consume with a
prefetch, ten times faster, and may touch a few more.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import pika
import pika.exceptions

from likkerctl.core import contract
from likkerctl.core.clients import rabbit
from likkerctl.core.errors import NotFound
from likkerctl.core.messages.archive import jsonable
from likkerctl.core.profile import Profile

SAMPLING_EFFECT = (
    "Sampling takes the messages and returns them at once (basic.nack requeue): nothing is "
    "removed, but each sampled message is marked redelivered, its x-delivery-count rises by "
    "one, and on a quorum queue it goes back at the tail (RabbitMQ 3.10)."
)
EXACT_UP_TO = 200


@dataclass(frozen=True)
class Sampled:
    message_id: str | None
    headers: dict[str, Any]
    redelivered: bool
    body: bytes
    routing_key: str
    exchange: str

    @property
    def delivery_count(self) -> int:
        """Deliveries before our sample (x-delivery-count; our own sample adds one)."""
        try:
            return int(self.headers.get("x-delivery-count", 0))
        except (TypeError, ValueError):
            return 0

    def header(self, name: str) -> Any:
        value = self.headers.get(name)
        return value.decode(errors="replace") if isinstance(value, bytes) else value

    @property
    def bot(self) -> int | None:
        return _int(self.header(contract.H_BOT))

    @property
    def user(self) -> int | None:
        return _int(self.header(contract.H_USER))

    @property
    def post(self) -> int | None:
        return _int(self.header(contract.H_POST))

    @property
    def action(self) -> str | None:
        value = self.header(contract.H_ACTION)
        return None if value is None else str(value)

    @property
    def actor(self) -> str:
        if self.bot is not None:
            return f"bot:{self.bot}"
        return f"user:{self.user}" if self.user is not None else "unknown"

    @property
    def reason(self) -> str:
        """Why a dead letter died: our header, else the broker's x-death reason."""
        value = self.header(contract.H_FAILURE)
        if value:
            return str(value)
        deaths = self.headers.get("x-death")
        if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
            reason = deaths[0].get("reason")
            if reason:
                return f"x-death:{jsonable(reason)}"
        return "unknown"

    def as_json(self) -> dict[str, Any]:
        try:
            body: Any = json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            body = jsonable(self.body)
        return {
            "message_id": self.message_id,
            "actor": self.actor,
            "bot": self.bot,
            "user": self.user,
            "post": self.post,
            "action": self.action,
            "delivery_count": self.delivery_count,
            "redelivered": self.redelivered,
            "routing_key": self.routing_key,
            "headers": jsonable(self.headers),
            "body": body,
        }


def _int(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def sample(profile: Profile, queue: str, count: int, wait: float = 1.0) -> list[Sampled]:
    """Up to `count` messages from the head of `queue`, returned to it afterwards."""
    conn = rabbit.connect(profile)
    try:
        ch = conn.channel()
        try:
            ready = ch.queue_declare(queue, passive=True).method.message_count
        except pika.exceptions.ChannelClosedByBroker as exc:
            raise NotFound(f"no queue {queue!r} in vhost {profile.vhost!r}") from exc
        want = min(count, ready)
        out: list[Sampled] = []
        if want == 0:
            return out
        last_tag = 0

        def keep(method: Any, props: Any, body: bytes) -> None:
            nonlocal last_tag
            last_tag = method.delivery_tag
            out.append(
                Sampled(
                    props.message_id,
                    dict(props.headers or {}),
                    bool(method.redelivered),
                    body,
                    method.routing_key,
                    method.exchange,
                )
            )

        if want <= EXACT_UP_TO:
            # basic.get takes exactly one message per call: no read-ahead to disturb.
            while len(out) < want:
                method, props, body = ch.basic_get(queue)
                if method is None:
                    break
                keep(method, props, body)
        else:
            # Consuming is ~10x faster; a quorum queue may deliver a few more than the
            # prefetch, which go back with the rest when the channel closes.
            ch.basic_qos(prefetch_count=want)
            deadline = time.monotonic() + 2 * wait + want / 10_000
            for method, props, body in ch.consume(queue, inactivity_timeout=wait):
                if method is None or time.monotonic() > deadline:
                    break
                keep(method, props, body)
                if len(out) >= want:
                    break
        if want > EXACT_UP_TO:
            # Cancel first: a consumer still active would be handed the returned messages
            # straight back, counting another delivery for each.
            ch.cancel()
        if last_tag:
            ch.basic_nack(last_tag, multiple=True, requeue=True)
        return out
    finally:
        if conn.is_open:
            conn.close()


KEYS: dict[str, Callable[[Sampled], Any]] = {
    "bot": lambda m: m.bot,
    "user": lambda m: m.user,
    "post": lambda m: m.post,
    "action": lambda m: m.action,
    "actor": lambda m: m.actor,
}


def top(messages: Iterable[Sampled], by: str, depth: int, limit: int = 10) -> list[dict[str, Any]]:
    """Rank values of `by` by share of the sample and by redeliveries.

    `estimated` scales the share to the queue's depth; `redeliveries` sums x-delivery-count
    (deliveries before ours), the signal of a message cycling through nack-requeue.
    """
    key = KEYS[by]
    msgs = list(messages)
    groups: dict[Any, list[Sampled]] = defaultdict(list)
    for m in msgs:
        groups[key(m)].append(m)
    total_redeliveries = sum(m.delivery_count for m in msgs) or 1
    rows = []
    for value, items in groups.items():
        counts = [m.delivery_count for m in items]
        rows.append(
            {
                by: value,
                "messages": len(items),
                "share": round(len(items) / len(msgs), 4),
                "estimated": round(len(items) / len(msgs) * depth),
                "redeliveries": sum(counts),
                "redelivery_share": round(sum(counts) / total_redeliveries, 4),
                "max_delivery_count": max(counts),
                "redelivered": sum(1 for m in items if m.redelivered),
            }
        )
    rows.sort(key=lambda r: (r["messages"], r["redeliveries"]), reverse=True)
    return rows[:limit]


def delivery_histogram(messages: Iterable[Sampled]) -> dict[str, int]:
    """Delivery counts in buckets 0, 1, 2-4, 5-9, 10-99, 100+."""
    buckets = Counter[str]()
    for m in messages:
        n = m.delivery_count
        label = (
            "0"
            if n == 0
            else "1"
            if n == 1
            else "2-4"
            if n < 5
            else "5-9"
            if n < 10
            else "10-99"
            if n < 100
            else "100+"
        )
        buckets[label] += 1
    return {k: buckets.get(k, 0) for k in ("0", "1", "2-4", "5-9", "10-99", "100+")}


def dead_letter_groups(messages: Iterable[Sampled]) -> dict[str, Any]:
    msgs = list(messages)
    by_reason = Counter(m.reason for m in msgs)
    by_pair = Counter((m.reason, m.actor) for m in msgs)
    return {
        "by_reason": dict(by_reason.most_common()),
        "groups": [
            {"reason": reason, "actor": actor, "messages": n}
            for (reason, actor), n in by_pair.most_common()
        ],
    }
