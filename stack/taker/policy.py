"""What a taker does with a message after the likes service answered (DESIGN §5). Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

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
