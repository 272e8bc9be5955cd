"""Sampling a queue without removing anything: peek, top offenders, dead-letter groups.

How depends on the queue and the broker (`limits.plan_sampling`): a stream is read by
offset and a quorum queue in place through the node's CLI when likkerctl can reach it, with
no side effect; otherwise messages are taken and returned at once (`basic.nack` requeue):
nothing is removed, but each sampled message is marked redelivered, its x-delivery-count
rises by one (x-acquired-count from RabbitMQ 4.3), a quorum queue puts it back at its tail
(measured on 3.10), and for the milliseconds of the sample other consumers do not see it.
A quorum queue whose delivery-limit counts those returns (3.10 to 4.2) is not sampled that way
at all: likkerctl refuses and says why. Up to 200 messages are taken with basic.get, one at
a time, so exactly those are touched; larger samples consume with a prefetch, ten times
faster, and may touch a few more (not on a queue with a delivery-limit: basic.get only).
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pika
import pika.exceptions
import pika.spec

from likkerctl.core.clients import node, rabbit
from likkerctl.core.errors import Conflict, Failed, InvalidInput, NotFound
from likkerctl.core.messages import limits
from likkerctl.core.messages.archive import jsonable
from likkerctl.core.messages.fields import (
    Envelope,
    Field,
    NotJson,
    display,
    key_of,
    parse_field,
)
from likkerctl.core.profile import Profile

SAMPLING_EFFECT = (
    "Effect on the queue, by type and version: a stream is read by offset and a quorum "
    "queue in place (rabbitmq-queues peek, when likkerctl can reach the node: the local "
    "stack, or a profile's node + erlang_cookie_file) — nothing changes. Otherwise the "
    "messages are taken and returned at once (basic.nack requeue): nothing is removed, but "
    "each is marked redelivered and its x-delivery-count rises by one (RabbitMQ 3.10 to 4.2; "
    "from 4.3 x-acquired-count instead), and a quorum queue puts it back at the tail. A "
    "quorum queue with a delivery-limit (set by argument or policy; 20 by default from 4.0) "
    "is never sampled that way on 3.10 to 4.2: likkerctl refuses rather than dead-letter."
)
EXACT_UP_TO = 200


class Sampled(Envelope):
    """A sampled message: an Envelope with the Likker contract's convenience readings."""

    __slots__ = ()

    @property
    def message_id(self) -> str | None:
        value = self.prop("message_id")
        return None if value is None else str(value)

    def as_json(self, show: list[Field] | None = None) -> dict[str, Any]:
        try:
            body: Any = self.json()
        except NotJson:
            body = jsonable(self.body)
        props = self.props
        properties = (
            {k: jsonable(v) for k, v in vars(props).items() if v is not None and k != "headers"}
            if props is not None and not isinstance(props, Mapping)
            else {k: jsonable(v) for k, v in dict(props or {}).items() if k != "headers"}
        )
        doc: dict[str, Any] = {
            "message_id": self.message_id,
            "actor": self.actor,
            "bot": self.bot,
            "user": self.user,
            "post": _int(self.header("likker-post")),
            "action": self.header("likker-action"),
            "delivery_count": self.delivery_count,
            "deliveries": self.deliveries,
            "redelivered": self.redelivered,
            "reason": self.reason,
            "origin": self.origin(),
            "routing_key": self.routing_key,
            "exchange": self.exchange,
            "offset": self.offset,
            "properties": properties,
            "headers": jsonable(dict(self.headers)),
            "body": body,
        }
        if show:
            doc["fields"] = {f.name: jsonable(_safe(f, self)) for f in show}
        return doc


def _safe(f: Field, env: Envelope) -> Any:
    try:
        return f.value(env)
    except NotJson:
        return None


def _int(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


@dataclass
class Sample:
    """Messages read from a queue, and how: which way, why, and what that did to the queue."""

    queue: str
    messages: list[Sampled]
    mode: str
    why: str
    effect: str
    broker_version: str
    delivery_limit: int | None
    notes: list[str] = field(default_factory=list)

    def about(self) -> dict[str, Any]:
        return {
            "sampling": self.mode,
            "sampling_why": self.why,
            "sampling_effect": self.effect,
            "broker_version": self.broker_version,
            "delivery_limit": self.delivery_limit,
            "notes": self.notes,
        }


def queue_facts(profile: Profile, queue: str) -> limits.QueueFacts:
    mgmt = rabbit.Management(profile, timeout=5)
    info = mgmt.queue(queue)
    version = str(mgmt.overview().get("rabbitmq_version", ""))
    return limits.QueueFacts.of(info, version)


def take(profile: Profile, queue: str, count: int, wait: float = 1.0) -> Sample:
    """Up to `count` messages from the head of `queue`, the safest way this broker allows.

    Raises Conflict when the only way would count toward the queue's delivery-limit.
    """
    facts = queue_facts(profile, queue)
    unreachable = node.configured(profile)
    plan = limits.plan_sampling(facts, unreachable)
    sample = Sample(
        queue, [], plan.mode or "refused", plan.why, plan.effect, facts.version_text,
        facts.delivery_limit,
    )  # fmt: skip
    if plan.mode is None:
        raise Conflict(f"not sampling: {plan.why}")
    if plan.mode == limits.NODE_PEEK:
        try:
            sample.messages = _node_peek(profile, queue, count)
            return sample
        except Failed as exc:
            # The CLI path failed (cookie, network): fall back only where that is harmless.
            fallback = limits.plan_sampling(facts, str(exc))
            if fallback.mode is None:
                raise Conflict(f"not sampling: {fallback.why}") from exc
            sample.mode, sample.why, sample.effect = fallback.mode, fallback.why, fallback.effect
            sample.notes.append(f"side-effect-free peek failed: {exc}")
    if plan.mode == limits.STREAM:
        sample.messages = _stream_read(profile, queue, count, wait)
    else:
        exact = facts.delivery_limit is not None
        sample.messages = _take_and_return(profile, queue, count, wait, exact)
    return sample


def sample(profile: Profile, queue: str, count: int, wait: float = 1.0) -> list[Sampled]:
    """Up to `count` messages from the head of `queue`, left in it (see `take`)."""
    return take(profile, queue, count, wait).messages


def _node_peek(profile: Profile, queue: str, count: int) -> list[Sampled]:
    out = []
    for p in node.peek(profile, queue, count):
        props = pika.spec.BasicProperties()
        props.decode(p.properties)
        headers = dict(props.headers or {})
        if p.delivery_count:
            # What a delivery would carry (the broker adds it when delivering).
            headers["x-delivery-count"] = p.delivery_count
        out.append(
            Sampled(
                headers,
                props,
                p.body,
                p.routing_keys[0] if p.routing_keys else "",
                p.exchange,
                p.delivery_count > 0,
                queue,
            )
        )
    return out


def _keep(out: list[Sampled], queue: str) -> Callable[[Any, Any, bytes], None]:
    def keep(method: Any, props: Any, body: bytes) -> None:
        headers = dict(props.headers or {})
        offset = headers.get("x-stream-offset")
        out.append(
            Sampled(
                headers,
                props,
                body,
                method.routing_key,
                method.exchange,
                bool(method.redelivered),
                queue,
                offset if isinstance(offset, int) else None,
            )
        )

    return keep


def _stream_read(profile: Profile, queue: str, count: int, wait: float) -> list[Sampled]:
    """The first `count` messages of a stream: a consumer from offset `first`, no side effect.

    Streams refuse nack and reject, which pika sends for deliveries that arrive after a
    cancel: so the prefetch is the sample size and nothing is acked (an ack on a stream
    only grants credit), and the broker sends no more than we keep.
    """
    conn = rabbit.connect(profile)
    out: list[Sampled] = []
    keep = _keep(out, queue)
    try:
        ch = conn.channel()
        ch.basic_qos(prefetch_count=min(max(count, 1), 65_535))

        def on_message(_channel: Any, method: Any, props: Any, body: bytes) -> None:
            if len(out) < count:
                keep(method, props, body)

        ch.basic_consume(queue, on_message, arguments={"x-stream-offset": "first"})
        deadline = time.monotonic() + wait
        seen = 0
        while len(out) < count and time.monotonic() < deadline:
            conn.process_data_events(time_limit=0.1)
            if len(out) > seen:
                seen, deadline = len(out), time.monotonic() + wait
        return out[:count]
    except pika.exceptions.ChannelClosedByBroker as exc:
        raise NotFound(f"cannot read stream {queue!r}: {exc.reply_text}") from exc
    finally:
        if conn.is_open:
            conn.close()


def _take_and_return(
    profile: Profile, queue: str, count: int, wait: float, exact_only: bool
) -> list[Sampled]:
    """Take and return. `exact_only`: basic.get only, each message nacked, none read ahead
    (a reject or a closed channel counts toward a 4.3+ delivery-limit; a nack does not)."""
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
        keep = _keep(out, queue)

        def take_one(method: Any, props: Any, body: bytes) -> None:
            nonlocal last_tag
            last_tag = method.delivery_tag
            keep(method, props, body)

        if want <= EXACT_UP_TO or exact_only:
            # basic.get takes exactly one message per call: no read-ahead to disturb.
            while len(out) < want:
                method, props, body = ch.basic_get(queue)
                if method is None:
                    break
                take_one(method, props, body)
        else:
            # Consuming is ~10x faster; a quorum queue may deliver a few more than the
            # prefetch, which go back with a basic.reject (no harm without a limit).
            ch.basic_qos(prefetch_count=want)
            deadline = time.monotonic() + 2 * wait + want / 10_000
            for method, props, body in ch.consume(queue, inactivity_timeout=wait):
                if method is None or time.monotonic() > deadline:
                    break
                take_one(method, props, body)
                if len(out) >= want:
                    break
            # Cancel first: a consumer still active would be handed the returned messages
            # straight back, counting another delivery for each. (pika's cancel returns
            # what it had read ahead with basic.reject.)
            ch.cancel()
        if last_tag:
            ch.basic_nack(last_tag, multiple=True, requeue=True)
        return out[:want]
    finally:
        if conn.is_open:
            conn.close()


# -- reading a sample -----------------------------------------------------------------
def top(
    messages: Iterable[Envelope], by: str | Field, depth: int, limit: int = 10
) -> list[dict[str, Any]]:
    """Rank values of a field by share of the sample and by redeliveries.

    `estimated` scales the share to the queue's depth; `redeliveries` sums deliveries
    before ours (x-delivery-count, x-acquired-count on 4.3+): the signal of a message
    cycling through nack-requeue. A body path on a non-JSON body ranks as missing.
    """
    f = by if isinstance(by, Field) else parse_field(by)
    msgs = list(messages)
    groups: dict[Any, list[Envelope]] = defaultdict(list)
    shown: dict[Any, Any] = {}
    for m in msgs:
        value = _safe(f, m)
        key = key_of(value)
        groups[key].append(m)
        shown[key] = value
    total_redeliveries = sum(m.deliveries for m in msgs) or 1
    rows = []
    for key, items in groups.items():
        counts = [m.deliveries for m in items]
        value = shown[key]
        rows.append(
            {
                f.name: value if not isinstance(value, (dict, list)) else display(value),
                "messages": len(items),
                "share": round(len(items) / len(msgs), 4),
                "estimated": round(len(items) / len(msgs) * depth),
                "redeliveries": sum(counts),
                "redelivery_share": round(sum(counts) / total_redeliveries, 4),
                "max_delivery_count": max(counts),
                "redelivered": sum(1 for m in items if m.redelivered),
            }
        )
    rows.sort(key=lambda r: (r["redeliveries"], r["messages"]), reverse=True)
    return rows[:limit]


def delivery_histogram(messages: Iterable[Envelope]) -> dict[str, int]:
    """Delivery counts in buckets 0, 1, 2-4, 5-9, 10-99, 100+."""
    buckets = Counter[str]()
    for m in messages:
        n = m.deliveries
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


def dead_letter_groups(messages: Iterable[Envelope]) -> dict[str, Any]:
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


def check_json(samples: Iterable[Envelope], f: Field) -> None:
    """Refuse a body path when no sampled body is JSON (exit 2)."""
    msgs = list(samples)
    if f.kind == "body" and f.path and msgs and not any(m.is_json for m in msgs):
        raise InvalidInput(f"{f.name} reads the JSON body, but no sampled body is JSON", "by")
