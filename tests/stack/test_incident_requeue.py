"""The Friday incident replayed under the legacy `requeue` retry policy."""

from __future__ import annotations

from likkerctl.core import contract
from tests.conftest import stack_fixture
from tests.helpers import RunningStack, wait_for

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
    report = stack.load(pop, scenario="friday", rate=250, duration_s=4, bot_share=0.3)
    assert report.accepted["bot"] and report.accepted["user"], report.as_json()

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
    stack.purge(contract.ACTIONS_QUEUE)  # stop the loop before the stack is torn down
