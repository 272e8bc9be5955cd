"""Benchmark: likkerctl's moves against the broker's own shovel plugin, same queue contents.

Run:  .venv/bin/python bench/bench_moves.py [--messages 200000] [--rounds 3]

Each round refills a quorum queue with the same kind of contents (N contract messages, 10%
from one bot) and times, in turn:

- plugin:  a dynamic shovel of the rabbitmq_shovel plugin moving the whole queue, created
           and awaited the way any script would (the reference);
- header:  `likkerctl shovel SRC DST --where bot=B` on the broker engine (shovel into a
           headers exchange, the rest back to the source's tail via an alternate exchange);
- client:  the same selection on likkerctl's client engine.

Every run examines all N messages, so msg/s is N / seconds. Medians per method and their
ratios to the plugin go to stdout as JSON; docs/BENCHMARKS.md records them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pika
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from likkerctl.core import move
from likkerctl.core.messages import predicate
from likkerctl.core.profile import Profile
from tests.helpers import RunningStack, drain_ids, fill_queue, start_stack

BOT = 4242
SRC, DST = "bench.src", "bench.dst"


def profile_of(stack: RunningStack) -> Profile:
    s = stack.settings
    return Profile(
        amqp_url=s.amqp_url,
        mgmt_url=s.management_url,
        state_dir=str(s.state_dir),
    )


def empty_queues(stack: RunningStack) -> None:
    """SRC and DST declared (quorum) and empty."""
    conn = pika.BlockingConnection(pika.URLParameters(stack.settings.amqp_url))
    ch = conn.channel()
    for q in (SRC, DST):
        ch.queue_declare(q, durable=True, arguments={"x-queue-type": "quorum"})
        ch.queue_purge(q)
    conn.close()


def reset(stack: RunningStack, n: int) -> None:
    empty_queues(stack)
    fill_queue(stack.settings.amqp_url, SRC, n, bot_every=10, bot_id=BOT, declare=False)


def plugin_shovel(stack: RunningStack) -> float:
    """Seconds for the plugin to move the whole queue (PUT until the shovel is gone)."""
    s = stack.settings
    url = f"{s.management_url}/api/parameters/shovel/%2F/bench-plugin"
    auth = (s.rabbit_user, s.rabbit_password)
    value = {
        "src-protocol": "amqp091",
        "src-uri": "amqp://",
        "src-queue": SRC,
        "src-delete-after": "queue-length",
        "dest-protocol": "amqp091",
        "dest-uri": "amqp://",
        "dest-queue": DST,
        "ack-mode": "on-confirm",
    }
    start = time.monotonic()
    requests.put(url, json={"value": value}, auth=auth, timeout=10).raise_for_status()
    while requests.get(url, auth=auth, timeout=10).status_code != 404:
        time.sleep(0.2)
    return time.monotonic() - start


def check(stack: RunningStack, n: int, moved_expected: int) -> None:
    moved = drain_ids(stack.settings.amqp_url, DST)
    kept = drain_ids(stack.settings.amqp_url, SRC)
    assert len(moved) == moved_expected and len(moved) + len(kept) == n, (len(moved), len(kept))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    n = args.messages
    pred = predicate.parse(f"bot={BOT}")
    with tempfile.TemporaryDirectory(prefix="likker-bench-") as tmp:
        stack = start_stack(Path(tmp), takers=0)
        try:
            prof = profile_of(stack)
            methods: dict[str, Callable[[], float]] = {
                "plugin": lambda: plugin_shovel(stack),
                "header": lambda: move.move_broker(prof, SRC, DST, predicate=pred).seconds,
                "client": lambda: (
                    move.move_client(prof, SRC, move.QueueSink(DST), predicate=pred).seconds
                ),
            }
            times: dict[str, list[float]] = {m: [] for m in methods}
            for _ in range(args.rounds):
                for name, run in methods.items():
                    reset(stack, n)
                    times[name].append(run())
                    check(stack, n, n if name == "plugin" else n // 10)
        finally:
            stack.down()
    rates = {m: round(n / statistics.median(t)) for m, t in times.items()}
    print(
        json.dumps(
            {
                "date": datetime.now(UTC).date().isoformat(),
                "machine": f"{os.cpu_count()} cores {platform.machine()}",
                "messages": n,
                "selected": n // 10,
                "rounds": args.rounds,
                "seconds": {m: [round(x, 2) for x in t] for m, t in times.items()},
                "msg_per_s": rates,
                "header_vs_plugin": round(rates["header"] / rates["plugin"], 2),
                "client_vs_plugin": round(rates["client"] / rates["plugin"], 2),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
