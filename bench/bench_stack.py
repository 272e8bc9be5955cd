"""Benchmark: gateway accepted likes/s and end-to-end stored likes/s on a private stack.

Run:  .venv/bin/python bench/bench_stack.py [--seconds 10] [--rate 3000] [--db postgresql]

The machine is shared and noisy, so next to each figure we measure a reference in the same
run on the same broker: pika publishing with one confirm at a time (DESIGN §7's 1,570 msg/s
row), before and after the load; the ratios use the mean of the two. Ratios to that
reference are what to compare between runs. Results go to stdout as JSON;
docs/BENCHMARKS.md records them.

Stored/s runs from the first request to the moment the last accepted like's row was written
(its `stored_at`, same clock), so how often we poll the store does not count against it.
Latency is per like, from the gateway taking it (the message's `received_at`, stamped just
before the publish whose confirm gives the 202) to its row's `stored_at`: 202 -> row plus the
confirm wait. The load generator's own clock is not used: when it is short of CPU it reads
its answers late, and rows then seemed stored before they were accepted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pika

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from likkerctl.core import contract
from stack import postgres
from stack.settings import DATABASES, StackSettings
from tests.helpers import RunningStack, start_stack


def reference_confirm_each(stack: RunningStack, seconds: float) -> float:
    """msg/s of BlockingConnection publishing contract messages, waiting for each confirm."""
    conn = pika.BlockingConnection(pika.URLParameters(stack.settings.amqp_url))
    channel = conn.channel()
    channel.queue_declare("bench.reference", durable=True, arguments={"x-queue-type": "quorum"})
    channel.confirm_delivery()
    msg = contract.new_like(1, contract.Actor(1))
    body, props = msg.body(), msg.properties()
    n, start = 0, time.monotonic()
    while time.monotonic() - start < seconds:
        channel.basic_publish("", "bench.reference", body, props)
        n += 1
    rate = n / (time.monotonic() - start)
    channel.queue_delete("bench.reference")
    conn.close()
    return rate


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def measure(stack: RunningStack, *, rate: float, seconds: float, concurrency: int) -> dict:
    pop = stack.population(users=100, posts=400)  # 40,000 distinct pairs: no repeats
    store_before = (
        stack.likes_metric("likker_likes_store_seconds_sum"),
        stack.likes_metric("likker_likes_store_seconds_count"),
    )
    start = time.time()
    report = stack.load(
        pop, scenario="normal", rate=rate, duration_s=seconds, concurrency=concurrency
    )
    accepted = report.accepted["user"]
    stored = stack.wait_stored(accepted, timeout=600)
    takers = [stack.taker_state(t) for t in stack.settings.taker_ids]
    calls = sum(t["batches"] for t in takers)
    store_s = stack.likes_metric("likker_likes_store_seconds_sum") - store_before[0]
    store_calls = stack.likes_metric("likker_likes_store_seconds_count") - store_before[1]
    times = stack.stored_at(stored)
    last_row = max((at.timestamp() for _, at in times.values()), default=time.time())
    latency = [(at - received).total_seconds() for received, at in times.values()]
    return {
        "sent": report.sent,
        "accepted": len(accepted),
        "statuses": dict(report.statuses),
        "accepted_per_s": round(len(accepted) / report.elapsed_s, 1),
        "stored": len(stored),
        "stored_per_s": round(len(stored) / (last_row - start), 1),
        "all_stored_once": len(stored) == len(accepted) and set(stored.values()) <= {1},
        "latency_p50_s": round(_quantile(latency, 0.50), 3),
        "latency_p99_s": round(_quantile(latency, 0.99), 3),
        # Messages per call to the likes service over the run (population set-up included).
        "mean_batch": round(sum(t["processed"] for t in takers) / calls, 1) if calls else None,
        # The store's own cost: the likes service's transaction time per accepted like
        # (its histogram, over the load and the drain), i.e. what the database takes.
        "store_ms_per_call": round(1000 * store_s / store_calls, 2) if store_calls else None,
        "store_us_per_like": round(1e6 * store_s / len(stored), 1) if stored else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=3000.0, help="offered likes/s")
    parser.add_argument("--concurrency", type=int, default=128)
    parser.add_argument("--takers", type=int, default=2)
    parser.add_argument("--taker-batch", type=int, default=StackSettings.taker_batch)
    parser.add_argument("--taker-linger-ms", type=float, default=StackSettings.taker_linger_ms)
    parser.add_argument("--taker-prefetch", type=int, help="default: twice the batch")
    parser.add_argument(
        "--db",
        choices=DATABASES,
        default="sqlite",
        help="the stores: SQLite files, or the stack's own PostgreSQL server",
    )
    args = parser.parse_args()
    takers = {
        "takers": args.takers,
        "taker_batch": args.taker_batch,
        "taker_linger_ms": args.taker_linger_ms,
        "taker_prefetch": args.taker_prefetch,
    }
    with tempfile.TemporaryDirectory(prefix="likker-bench-") as tmp:
        stack = start_stack(
            Path(tmp), retry_policy="classified", taker_rate=0, db=args.db, **takers
        )
        try:
            # Before and after the load (the stack idle both times): the machine's other
            # tenants come and go within a run, and the mean of the two is fairer to both.
            before = reference_confirm_each(stack, 5.0)
            result = measure(
                stack, rate=args.rate, seconds=args.seconds, concurrency=args.concurrency
            )
            after = reference_confirm_each(stack, 5.0)
            reference = (before + after) / 2
        finally:
            stack.down()
            postgres.wipe(stack.settings)  # its cluster may live outside the temp dir
    result.update(
        date=datetime.now(UTC).isoformat(timespec="seconds"),
        machine=f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores",
        db=args.db,
        offered_rate=args.rate,
        seconds=args.seconds,
        **takers,
        reference_confirm_each_per_s=round(reference, 1),
        reference_before_after=[round(before, 1), round(after, 1)],
        accepted_vs_reference=round(result["accepted_per_s"] / reference, 2),
        stored_vs_reference=round(result["stored_per_s"] / reference, 2),
        stored_vs_accepted=round(result["stored_per_s"] / result["accepted_per_s"], 2),
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
