"""Which actors a runbook may act on: those whose messages are cycling. Pure.

A message still in the queue with `x-delivery-count` N was handed to a taker N times and
refused each time (nack with requeue): a like that succeeds is acked and gone. So in a
sample, an actor's *refusal share* is its part of all the sampled messages' deliveries, and
its *cycling* messages are those delivered at least `min_deliveries` times. A banned user's
bot, refused every time, owns nearly all the refusals; a human whose like failed once owns
almost none; and when the likes service is down, everyone cycles and no one stands out, so
nobody is blocked and the runbook escalates.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol


class Message(Protocol):
    @property
    def bot(self) -> int | None: ...

    @property
    def actor(self) -> str: ...

    @property
    def delivery_count(self) -> int: ...


@dataclass(frozen=True)
class Thresholds:
    min_deliveries: int = 5
    min_refusal_share: float = 0.2
    min_messages: int = 10  # cycling messages in the sample
    max_actors: int = 3
    bots_only: bool = True


@dataclass
class ActorStats:
    actor: str
    bot: int | None
    messages: int = 0
    cycling: int = 0
    deliveries: int = 0
    all_deliveries: int = 0  # of every actor in the sample

    @property
    def refusal_share(self) -> float:
        return self.deliveries / self.all_deliveries if self.all_deliveries else 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "actor": self.actor,
            "bot": self.bot,
            "messages": self.messages,
            "cycling": self.cycling,
            "refusal_share": round(self.refusal_share, 4),
            "deliveries": self.deliveries,
        }


@dataclass
class Choice:
    selected: list[ActorStats] = field(default_factory=list)
    # Actors that cycle but were left alone, and why (humans, too few messages...).
    passed_over: list[tuple[ActorStats, str]] = field(default_factory=list)
    # Set when more actors qualified than allowed: then none is selected.
    too_many: int = 0

    @property
    def bots(self) -> list[int]:
        return [s.bot for s in self.selected if s.bot is not None]


def actor_stats(messages: Iterable[Message], min_deliveries: int) -> list[ActorStats]:
    stats: dict[str, ActorStats] = {}
    for m in messages:
        s = stats.get(m.actor)
        if s is None:
            s = stats[m.actor] = ActorStats(m.actor, m.bot)
        s.messages += 1
        s.deliveries += m.delivery_count
        if m.delivery_count >= min_deliveries:
            s.cycling += 1
    total = sum(s.deliveries for s in stats.values())
    for s in stats.values():
        s.all_deliveries = total
    return sorted(stats.values(), key=lambda s: (s.deliveries, s.messages), reverse=True)


def choose(stats: Iterable[ActorStats], t: Thresholds) -> Choice:
    """The actors to act on; none at all when more than `max_actors` qualify.

    Many actors cycling at once is not abuse but an outage (the likes service down, say):
    blocking them all would make it worse, so the runbook escalates instead.
    """
    choice = Choice()
    qualified: list[ActorStats] = []
    for s in stats:
        if s.cycling == 0:
            continue
        if s.refusal_share < t.min_refusal_share:
            choice.passed_over.append(
                (s, f"refusal share {s.refusal_share:.0%} below {t.min_refusal_share:.0%}")
            )
        elif s.cycling < t.min_messages:
            choice.passed_over.append(
                (s, f"{s.cycling} cycling message(s), fewer than {t.min_messages}")
            )
        elif t.bots_only and s.bot is None:
            choice.passed_over.append((s, "not a bot (only bots are acted on)"))
        else:
            qualified.append(s)
    if len(qualified) > t.max_actors:
        choice.too_many = len(qualified)
        choice.passed_over.extend(
            (s, f"{len(qualified)} actors qualify, more than max_actors={t.max_actors}")
            for s in qualified
        )
        return choice
    choice.selected = qualified
    return choice


def within(choice: Choice, approved: Iterable[str]) -> Choice:
    """`choice` narrowed to the `approved` actors (those of a plan a human approved); the
    others are passed over, saying so."""
    allowed = set(approved)
    narrowed = Choice(passed_over=list(choice.passed_over), too_many=choice.too_many)
    for s in choice.selected:
        if s.actor in allowed:
            narrowed.selected.append(s)
        else:
            narrowed.passed_over.append((s, "not in the approved plan"))
    return narrowed
