"""What a taker does with a message after the likes service answered (DESIGN §5). Pure.

A batch gets one answer with one outcome per message; each message is then decided on its
own outcome and its own delivery count, as if it had been sent alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["stored", "duplicate", "forbidden", "not-found", "invalid", "transient"]
PERMANENT: frozenset[str] = frozenset({"forbidden", "not-found", "invalid"})


@dataclass(frozen=True)
class Decision:
    verb: Literal["ack", "requeue", "dead-letter"]
    reason: str | None = None  # likker-failure header for dead letters
    backoff_s: float = 0.0  # wait before requeueing


def classify_status(status: int | None) -> Kind:
    """The likes service's HTTP status (None: no answer at all) as an outcome kind."""
    if status is None or status >= 500 or status in (408, 429):
        return "transient"
    if status == 201:
        return "stored"
    if 200 <= status < 300:
        return "duplicate"
    if status == 403:
        return "forbidden"
    if status == 404:
        return "not-found"
    return "invalid"


def batch_outcomes(status: int, payload: Any, count: int) -> list[tuple[Kind, str]]:
    """Each message's (kind, detail) from the answer to a batch of `count` messages.

    `status` is the HTTP status of the batch call and `payload` its decoded JSON body (None if
    it was not JSON). Anything but a 200 with exactly one result per message is a failure of
    the whole call: every message is transient, retried by the policy as when the service is
    unreachable.
    """
    if status != 200:
        why = f"likes service answered the batch with HTTP {status}"
        if isinstance(payload, dict) and payload.get("detail"):
            why += f": {payload['detail']}"
        return [("transient", why[:300])] * count
    results = payload.get("results") if isinstance(payload, dict) else None
    if not isinstance(results, list) or len(results) != count:
        return [("transient", "likes service gave a malformed answer to the batch")] * count
    outcomes: list[tuple[Kind, str]] = []
    for item in results:
        item_status = item.get("status") if isinstance(item, dict) else None
        kind = classify_status(item_status if type(item_status) is int else None)
        detail = str(item.get("detail") or "")[:300] if isinstance(item, dict) else ""
        outcomes.append((kind, detail))
    return outcomes


def decide(
    policy: str,
    kind: Kind,
    *,
    delivery_count: int,
    max_retries: int,
    backoff_s: float,
    backoff_max_s: float,
) -> Decision:
    """`delivery_count` is the broker's x-delivery-count: earlier deliveries of this message."""
    if kind in ("stored", "duplicate"):
        return Decision("ack")
    if policy == "requeue":
        return Decision("requeue")  # the legacy loop the incident is made of
    if kind in PERMANENT:
        return Decision("dead-letter", kind)
    attempts = delivery_count + 1
    if attempts >= max_retries:
        return Decision("dead-letter", "retries-exhausted")
    return Decision("requeue", backoff_s=min(backoff_s * 2 ** (attempts - 1), backoff_max_s))
