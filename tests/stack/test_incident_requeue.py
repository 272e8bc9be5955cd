"""The Friday incident replayed under the legacy `requeue` retry policy."""

from __future__ import annotations

import math

from likkerctl.core import contract
from tests.conftest import stack_fixture
from tests.helpers import RunningStack, mixed_batch, wait_for

stack = stack_fixture(retry_policy="requeue", takers=2, taker_rate=0)


def _bot_delivery_counts(stack: RunningStack, bot_id: int) -> list[int]:
    sample = stack.sample(contract.ACTIONS_QUEUE, count=50)
    return [
        int(m["properties"]["headers"].get("x-delivery-count", 0))
        for m in sample
        if m["properties"].get("headers", {}).get(contract.H_BOT) == bot_id
    ]


def test_friday_under_requeue_cycles_the_bots_likes_forever(stack: RunningStack) -> None:
    pop = stack.population(users=40, posts=30, friday=True)
    assert pop.bot is not None and pop.bot.bot_id is not None
    # The takers hold up to their prefetch of the cycling likes; send more than they can
    # hold, so some are always in the queue to be seen there, as on the Friday.
    holds = stack.settings.takers * stack.settings.taker_prefetch_count
    rate, bot_share = 300, 0.5
    seconds = max(4, math.ceil(2 * holds / (rate * bot_share)))
    report = stack.load(pop, scenario="friday", rate=rate, duration_s=seconds, bot_share=bot_share)
    assert len(report.accepted["bot"]) > holds and report.accepted["user"], report.as_json()

    # Normal likes still land, each once, while the bot's messages keep coming back.
    stored = stack.wait_stored(report.accepted["user"])
    assert len(stored) == len(report.accepted["user"]) and set(stored.values()) == {1}
    assert stack.rows_for_bot(pop.bot.bot_id) == 0

    first = wait_for(lambda: _bot_delivery_counts(stack, pop.bot.bot_id), timeout=20)  # type: ignore[union-attr]
    assert first, "no bot message found in the queue: were they acked or dead-lettered?"
    later = wait_for(
        lambda: [
            c
            for c in _bot_delivery_counts(stack, pop.bot.bot_id)  # type: ignore[union-attr]
            if c > max(first) + 10
        ],
        timeout=30,
    )
    # Our management 'get' requeues too, but adds one per sample: only takers add tens.
    assert later, f"x-delivery-count is not rising (first sample max {max(first)})"
    assert stack.rows_for_bot(pop.bot.bot_id) == 0
    assert stack.queue(contract.DLQ_QUEUE).get("messages", 0) == 0
    _stop_the_loop(stack)


def test_a_mixed_batch_under_requeue_acks_the_good_and_cycles_the_refused(
    stack: RunningStack,
) -> None:
    pop = stack.population(users=2, posts=3, friday=True)
    mixed = mixed_batch(stack, pop)
    assert [s["state"] for s in stack.control("pause")] == ["paused", "paused"]
    stack.publish(mixed.messages)
    stack.control("resume", "taker-1")

    assert stack.wait_stored(mixed.stored) == dict.fromkeys(mixed.stored, 1)

    def refused_again_and_again() -> bool:
        seen = stack.taker_state("taker-1")["outcomes"]
        return all(seen.get(kind, 0) >= 10 for kind in ("forbidden", "not-found", "invalid"))

    assert wait_for(refused_again_and_again, timeout=30), stack.taker_state("taker-1")
    # Paused, a taker hands back what it holds: left in the queue are exactly the refused
    # messages, each delivered many times, and none was dead-lettered.
    assert [s["state"] for s in stack.control("pause")] == ["paused", "paused"]
    left: list[tuple[str, int]] = []
    wait_for(lambda: left.extend(stack.take_all()) or len(left) >= len(mixed.refused), 10)
    stack.control("resume")
    assert sorted(m for m, _ in left) == sorted(mixed.refused)
    assert all(count >= 5 for _, count in left), left
    assert not [m for m, _ in stack.dead_letters() if m in mixed.refused]
    assert stack.stored(mixed.stored) == dict.fromkeys(mixed.stored, 1)


def _stop_the_loop(stack: RunningStack) -> None:
    """Empty the actions queue: paused takers return what they hold, then purge."""
    assert [s["state"] for s in stack.control("pause")] == ["paused", "paused"]
    stack.purge(contract.ACTIONS_QUEUE)
    stack.control("resume")
