"""Benchmark: how fast the gateway turns a broker alarm into 503s, and back into 202s.

Run:  .venv/bin/python bench/bench_alarms.py [--rounds 5]

Starts a stack in a temp dir, then for the disk alarm (`rabbitmqctl set_disk_free_limit`
far above the free space) and the memory alarm (`set_vm_memory_high_watermark 0`), each
`--rounds` times: likes are sent one after another on fresh (user, post) pairs; the alarm
is raised, and the time to the first 503 is taken from the moment `rabbitmqctl` was started
and from when it returned (the tool itself takes a while); then the alarm is cleared and the
time to the first 202 again is taken the same way. At the end every 202 must be one row.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers import RunningStack, assert_all_gone, start_stack

ALARMS = {
    "disk": (("set_disk_free_limit", str(10**18)), ("set_disk_free_limit", "50000000")),
    "memory": (("set_vm_memory_high_watermark", "0"), ("set_vm_memory_high_watermark", "0.4")),
}


def until(stack: RunningStack, pairs: Any, status: int, accepted: list[str]) -> float:
    """Like on fresh pairs until one answers `status`; the monotonic time it did."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        resp = stack.like(*next(pairs))
        if resp.status_code == 202:
            accepted.append(resp.json()["request_id"])
        if resp.status_code == status:
            return time.monotonic()
        time.sleep(0.02)
    raise SystemExit(f"no {status} within 60 s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        stack = start_stack(Path(tmp), takers=1, taker_rate=0)
        try:
            pop = stack.population(users=40, posts=40)
            pairs = iter([(p, u.token) for p in pop.posts for u in pop.users])
            accepted: list[str] = []
            results: dict[str, dict[str, list[float]]] = {}
            for name, (raise_it, clear_it) in ALARMS.items():
                got = results.setdefault(
                    name, {k: [] for k in ("503_cmd", "503_ret", "202_cmd", "202_ret")}
                )
                for _ in range(args.rounds):
                    until(stack, pairs, 202, accepted)
                    start = time.monotonic()
                    stack.rabbitmqctl(*raise_it)
                    returned = time.monotonic()
                    refused = until(stack, pairs, 503, accepted)
                    got["503_cmd"].append(refused - start)
                    got["503_ret"].append(refused - returned)
                    start = time.monotonic()
                    stack.rabbitmqctl(*clear_it)
                    returned = time.monotonic()
                    again = until(stack, pairs, 202, accepted)
                    got["202_cmd"].append(again - start)
                    got["202_ret"].append(again - returned)
            stored = stack.wait_stored(accepted)
            report = {
                "machine": f"{platform.machine()}, {platform.system()}",
                "rounds": args.rounds,
                "accepted": len(accepted),
                "stored_once": sum(1 for n in stored.values() if n == 1),
                "median_s": {
                    alarm: {k: round(statistics.median(v), 3) for k, v in got.items()}
                    for alarm, got in results.items()
                },
                "max_s": {
                    alarm: {k: round(max(v), 3) for k, v in got.items()}
                    for alarm, got in results.items()
                },
            }
            print(json.dumps(report, indent=1))
        finally:
            assert_all_gone(stack.down())


if __name__ == "__main__":
    main()
