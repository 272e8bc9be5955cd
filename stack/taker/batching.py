"""How a taker groups messages into batches and paces them. Pure: the clock is passed in.

A batch is sent when it holds `limit` messages, when its first message has waited
`linger_s`, or before a message that would take it over `max_bytes`, whichever comes first.
The read rate is a ceiling in messages: a batch of n books n / rate seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class Batch(Generic[T]):
    limit: int
    linger_s: float
    max_bytes: int
    items: list[T] = field(default_factory=list)
    size_bytes: int = 0
    opened_at: float | None = None  # when its first item arrived (monotonic)

    def __len__(self) -> int:
        return len(self.items)

    def fits(self, nbytes: int) -> bool:
        """Whether an item of `nbytes` can join without taking the batch over its byte bound
        (an empty batch takes anything: a lone item is never refused here)."""
        return not self.items or self.size_bytes + nbytes <= self.max_bytes

    def add(self, item: T, nbytes: int, now: float) -> None:
        if not self.items:
            self.opened_at = now
        self.items.append(item)
        self.size_bytes += nbytes

    @property
    def full(self) -> bool:
        return len(self.items) >= self.limit

    def due(self, now: float) -> bool:
        if not self.items:
            return False
        assert self.opened_at is not None
        return self.full or now - self.opened_at >= self.linger_s

    def wait_s(self, now: float, idle_s: float) -> float:
        """How long the consumer may wait for more messages before this batch is due."""
        if not self.items:
            return idle_s
        assert self.opened_at is not None
        return max(0.0, min(idle_s, self.opened_at + self.linger_s - now))

    def take(self) -> list[T]:
        items, self.items, self.size_bytes, self.opened_at = self.items, [], 0, None
        return items


class Pacer:
    """At most `rate` messages/s on average (0: unpaced), booked a batch at a time."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._next = 0.0

    def delay(self, messages: int, now: float) -> float:
        """Seconds to wait before sending `messages`; books their share of the rate."""
        if self.rate <= 0:
            return 0.0
        start = max(self._next, now)
        self._next = start + messages / self.rate
        return start - now
