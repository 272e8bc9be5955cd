"""Benchmark: how long `likkerctl status` and `likkerctl forecast` take against a stack.

Run:  .venv/bin/python bench/bench_cli.py [--rounds 15] [--backlog 20000]

Starts a stack (two takers, the `requeue` policy) and times each command as a new process,
the way a person runs it, with `--json`: first on the idle stack, then during a storm (a
backlog of contract messages the takers requeue forever, which keeps both cores busy).
Reference, in the same rounds: a Python process that imports `requests` and makes the one
management API call (`/api/overview`), the least any Python tool can do to answer.
Wall-clock medians and p90s, and their ratios to the reference, go to stdout as JSON;
docs/BENCHMARKS.md records them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers import fill_queue, start_stack, wait_for  # noqa: E402


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--backlog", type=int, default=20_000)
    args = parser.parse_args()
    likkerctl = str(Path(sys.executable).with_name("likkerctl"))
    with tempfile.TemporaryDirectory(prefix="likker-bench-") as tmp:
        stack = start_stack(Path(tmp), takers=2, retry_policy="requeue", taker_rate=0.0)
        try:
            env = {**os.environ, "LIKKER_STATE_DIR": tmp}
            mgmt = stack.settings.management_url
            reference = [
                sys.executable,
                "-c",
                f"import requests; requests.get({mgmt + '/api/overview'!r}, "
                "auth=('guest', 'guest'), timeout=5).raise_for_status()",
            ]
            commands = {
                "reference": reference,
                "status": [likkerctl, "status", "--json"],
                "forecast": [likkerctl, "forecast", "--json"],
            }
            # Let Prometheus scrape the broker, so `forecast` answers from it as it would.
            probe = [likkerctl, "forecast", "--json"]

            def on_prometheus() -> bool:
                run = subprocess.run(probe, env=env, capture_output=True, text=True)
                return run.returncode == 0 and json.loads(run.stdout)["source"] == "prometheus"

            wait_for(on_prometheus, 60, 2)
            phases: dict[str, dict[str, list[float]]] = {}
            for phase in ("idle", "storm"):
                if phase == "storm":
                    url = stack.settings.amqp_url
                    fill_queue(url, "likker.actions", args.backlog, declare=False)
                times = phases[phase] = {name: [] for name in commands}
                for _ in range(args.rounds):
                    for name, argv in commands.items():
                        times[name].append(timed(argv, env))
        finally:
            stack.down()

    def p90(xs: list[float]) -> float:
        return sorted(xs)[int(0.9 * (len(xs) - 1))]

    def figures(times: dict[str, list[float]]) -> dict[str, Any]:
        ref = statistics.median(times["reference"])
        return {
            "median_s": {k: round(statistics.median(v), 3) for k, v in times.items()},
            "p90_s": {k: round(p90(v), 3) for k, v in times.items()},
            "vs_reference": {
                k: round(statistics.median(v) / ref, 2)
                for k, v in times.items()
                if k != "reference"
            },
        }

    report = {
        "date": datetime.now(UTC).date().isoformat(),
        "machine": f"{os.cpu_count()} cores {platform.machine()}",
        "rounds": args.rounds,
        "backlog": args.backlog,
        **{phase: figures(times) for phase, times in phases.items()},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
