"""Benchmark: how fast the takers store a backlog, by batch size (the store path's capacity).

Run:  .venv/bin/python bench/bench_drain.py [--batches 1,20,50,100,200] [--messages 20000]

With the takers paused, the actions queue is filled with valid likes (distinct user and
post pairs, published in transactions); then the takers resume and we time until the last
row is written (its `stored_at`). The takers are restarted with each batch size on one
stack, so the broker, the likes service and the SQLite file are the same for every size.
Results go to stdout as JSON lines; docs/BENCHMARKS.md records them. The gateway takes no
part: this is the ceiling of the storing side alone.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path

import pika

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from likkerctl.core import contract
from stack import procs, supervisor
from stack.settings import StackSettings
from tests.helpers import RunningStack, start_stack


def fill(stack: RunningStack, likes: list[contract.LikeMessage]) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(stack.settings.amqp_url))
    channel = conn.channel()
    channel.tx_select()
    for i, like in enumerate(likes, start=1):
        channel.basic_publish(
            contract.ACTIONS_EXCHANGE, contract.ACTIONS_ROUTING_KEY, like.body(), like.properties()
        )
        if i % 500 == 0:
            channel.tx_commit()
    channel.tx_commit()
    conn.close()


def restart_takers(stack: RunningStack, batch: int) -> None:
    settings = StackSettings.load(stack.settings.settings_file)
    settings.taker_batch = batch
    settings.save()
    for taker_id in settings.taker_ids:
        procs.stop(stack.records()[taker_id], timeout=10)
    supervisor.up(settings)  # the rest runs: only the takers start, with the saved settings
    stack.settings = settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="1,20,50,100,200")
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--takers", type=int, default=2)
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    with tempfile.TemporaryDirectory(prefix="likker-bench-") as tmp:
        stack = start_stack(Path(tmp), retry_policy="classified", takers=args.takers, taker_rate=0)
        try:
            users = -(-args.messages * len(batches) // 400)  # enough distinct pairs for all
            pop = stack.population(users=users, posts=400)
            pairs = itertools.product(pop.users, pop.posts)
            for batch in batches:
                restart_takers(stack, batch)
                stack.control("pause")
                likes = [
                    contract.new_like(post, contract.Actor(user.user_id))
                    for user, post in itertools.islice(pairs, args.messages)
                ]
                fill(stack, likes)
                start = time.time()
                stack.control("resume")
                ids = [like.request_id for like in likes]
                stored = stack.wait_stored(ids, timeout=900)
                last = max(at.timestamp() for _, at in stack.stored_at(ids).values())
                takers = [stack.taker_state(t) for t in stack.settings.taker_ids]
                print(
                    json.dumps(
                        {
                            "batch": batch,
                            "messages": args.messages,
                            "stored_once": len(stored) == len(ids) and set(stored.values()) == {1},
                            "stored_per_s": round(len(ids) / (last - start), 1),
                            "store_ms": [t["store_ms"] for t in takers],
                            "load_average": float(Path("/proc/loadavg").read_text().split()[0]),
                        }
                    ),
                    flush=True,
                )
        finally:
            stack.down()


if __name__ == "__main__":
    main()
