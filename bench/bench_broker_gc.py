"""Benchmark: a backlog on a broker that runs every collection full, against Erlang's default.

Run:  .venv/bin/python bench/bench_broker_gc.py [--messages 200000] [--rounds 3]

The stack's broker runs with ERL_FULLSWEEP_AFTER=0 (docs/STACK.md): the soak measured no
CPU cost at 500 likes/s with an almost empty queue, but a full collection copies a process's
live data every time, so a queue holding a large backlog is where it would cost. Two stacks
(takers off) run side by side, one with `broker_fullsweep_after=0`, one with Erlang's
default (65535, the reference); each round, on each in turn, a quorum queue is filled with N
contract messages, moved whole to a second queue by the broker's shovel plugin, and drained.
Per phase: seconds and the broker's CPU seconds; medians and ratios (0 over the default) go
to stdout as JSON; docs/BENCHMARKS.md records them. Every message is counted at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_moves import DST, SRC, empty_queues, plugin_shovel
from bench.bench_soak import cpu_by_part, rss_by_part
from tests.helpers import RunningStack, drain_ids, fill_queue, start_stack

SETTINGS = {"full": 0, "erlang": None}  # None: the VM's own default (65535)


def broker_cpu(stack: RunningStack) -> float:
    return cpu_by_part(stack)["rabbitmq"]


def timed(stack: RunningStack, run: Callable[[], object]) -> tuple[float, float, object]:
    """(seconds, broker CPU seconds, result) of one phase."""
    cpu, start = broker_cpu(stack), time.monotonic()
    result = run()
    return time.monotonic() - start, broker_cpu(stack) - cpu, result


def one_round(stack: RunningStack, n: int) -> dict[str, float]:
    url = stack.settings.amqp_url
    empty_queues(stack)
    out: dict[str, float] = {}
    fill_s, fill_cpu, ids = timed(stack, lambda: fill_queue(url, SRC, n, declare=False))
    move_s, move_cpu, _ = timed(stack, lambda: plugin_shovel(stack))
    out["rss_mb_full_backlog"] = rss_by_part(stack)["rabbitmq"]
    drain_s, drain_cpu, drained = timed(stack, lambda: drain_ids(url, DST))
    assert isinstance(ids, dict) and isinstance(drained, list)
    assert set(drained) == set(ids) and len(drained) == n, (len(drained), n)
    assert drain_ids(url, SRC) == []
    out.update(fill_s=fill_s, fill_cpu_s=fill_cpu, move_s=move_s, move_cpu_s=move_cpu)
    out.update(drain_s=drain_s, drain_cpu_s=drain_cpu)
    return out


@contextlib.contextmanager
def stacks(tmp: Path) -> Iterator[dict[str, RunningStack]]:
    running: dict[str, RunningStack] = {}
    try:
        for name, value in SETTINGS.items():
            running[name] = start_stack(tmp / name, takers=0, broker_fullsweep_after=value)
        yield running
    finally:
        for stack in running.values():
            stack.down()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in SETTINGS}
    with tempfile.TemporaryDirectory(prefix="likker-bench-gc-") as tmp, stacks(Path(tmp)) as on:
        for _ in range(args.rounds):
            for name, stack in on.items():
                rounds[name].append(one_round(stack, args.messages))
    medians = {
        name: {k: round(statistics.median(r[k] for r in rs), 2) for k in rs[0]}
        for name, rs in rounds.items()
    }
    ratio = {
        k: round(medians["full"][k] / medians["erlang"][k], 2)
        for k in medians["full"]
        if medians["erlang"][k]
    }
    print(
        json.dumps(
            {
                "date": datetime.now(UTC).date().isoformat(),
                "machine": f"{os.cpu_count()} cores {platform.machine()}",
                "messages": args.messages,
                "rounds": args.rounds,
                "median": medians,
                "full_over_erlang": ratio,
                "all": rounds,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
