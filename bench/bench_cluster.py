"""Benchmark: 1 node vs a 3-node cluster (gateway accepted/s, stored/s), and failover time.

Run:  .venv/bin/python bench/bench_cluster.py [--seconds 10] [--rate 3000]

Both stacks run in one process, one after the other, with the same load (bench_stack.py's
`measure`). The reference is bench_stack.py's too: pika publishing with one confirm at a
time to a quorum queue of the single-node stack, before its load and after the cluster's,
so the 1-node/3-node ratio and the ratios to the reference come from one run.

Failover time: likes at `--failover-rate`/s through the cluster's gateway, then `kill -9`
of node 1 (where the gateway, takers and auth are connected, and which leads the actions
queue it declared); the time from the kill to the first 202 answered to a like sent after
it (so it went through another node, to the queue's new leader). Also counted: the answers
of the likes in flight or sent until then (503 with Retry-After, never a 202 unstored).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_stack import measure, reference_confirm_each
from stack import broker
from stack.load import LoadReport
from tests.helpers import RunningStack, start_stack


def failover(stack: RunningStack, *, rate: float, seconds: float, kill_after: float) -> dict:
    pop = stack.population(users=100, posts=100)
    node = stack.settings.broker_nodes[0]
    result: dict[str, LoadReport] = {}
    began = time.monotonic()  # the load's clock starts within a millisecond of this
    thread = threading.Thread(
        target=lambda: result.update(
            r=stack.load(pop, scenario="normal", rate=rate, duration_s=seconds)
        )
    )
    thread.start()
    time.sleep(kill_after)
    pid = broker.beam_pid(stack.settings, node)
    assert pid is not None
    killed = time.monotonic() - began
    os.kill(pid, signal.SIGKILL)
    thread.join()
    report = result["r"]
    after = [(sent + took, status) for sent, took, status in report.timeline if sent >= killed]
    first_202 = min((at for at, status in after if status == 202), default=None)
    until = [
        s
        for sent, took, s in report.timeline
        if sent + took >= killed and sent + took <= (first_202 or 1e9)
    ]
    stored = stack.wait_stored(report.accepted["user"], timeout=300)
    return {
        "killed_node": node.node_name,
        "rate": rate,
        "failover_s": round(first_202 - killed, 2) if first_202 is not None else None,
        "answers_until_first_202": {str(s): until.count(s) for s in sorted(set(until))},
        "statuses": dict(report.statuses),
        "without_retry_after": report.without_retry_after,
        "accepted": len(report.accepted["user"]),
        "all_202_stored_once": len(stored) == len(report.accepted["user"])
        and set(stored.values()) <= {1},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=3000.0, help="offered likes/s")
    parser.add_argument("--concurrency", type=int, default=128)
    parser.add_argument("--failover-rate", type=float, default=300.0)
    args = parser.parse_args()
    load = {"rate": args.rate, "seconds": args.seconds, "concurrency": args.concurrency}
    runs: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="likker-bench-") as tmp:
        single = start_stack(Path(tmp) / "one", retry_policy="classified", taker_rate=0)
        try:
            before = reference_confirm_each(single, 5.0)
            runs["1 node"] = measure(single, **load)
            cluster = start_stack(
                Path(tmp) / "three", nodes=3, retry_policy="classified", taker_rate=0
            )
            try:
                runs["3 nodes"] = measure(cluster, **load)
                runs["failover"] = failover(
                    cluster, rate=args.failover_rate, seconds=20.0, kill_after=6.0
                )
            finally:
                cluster.down()
            after = reference_confirm_each(single, 5.0)
        finally:
            single.down()
    reference = (before + after) / 2
    one, three = runs["1 node"], runs["3 nodes"]
    print(
        json.dumps(
            {
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores",
                "offered_rate": args.rate,
                "seconds": args.seconds,
                **runs,
                "reference_confirm_each_per_s": round(reference, 1),
                "reference_before_after": [round(before, 1), round(after, 1)],
                "accepted_3_vs_1": round(three["accepted_per_s"] / one["accepted_per_s"], 2),
                "stored_3_vs_1": round(three["stored_per_s"] / one["stored_per_s"], 2),
                "accepted_vs_reference": {
                    k: round(runs[k]["accepted_per_s"] / reference, 2)
                    for k in ("1 node", "3 nodes")
                },
                "stored_vs_reference": {
                    k: round(runs[k]["stored_per_s"] / reference, 2) for k in ("1 node", "3 nodes")
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
