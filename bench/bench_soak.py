"""Soak: the stack at a steady rate for minutes, a Friday burst in the middle, the webhook in
enforce mode. Not part of the test suite (it takes a quarter of an hour).

Run:  .venv/bin/python bench/bench_soak.py [--rate 500] [--minutes 10] [--burst-s 60]
                                           [--headroom-mb 0]

Starts a stack in a temp dir (the legacy `requeue` policy, so the burst is the incident;
the webhook in enforce mode with the built-in runbooks, which should block the bot and move
its messages away unattended), then sends likes at `--rate` from humans on distinct (user,
post) pairs for the first and last parts, and the `friday` scenario (20% of requests from
a banned user's bot) for `--burst-s` in the middle. Reports:

- lost: every human like answered 202 must end as exactly one row (0 lost, 0 doubled);
- each part's memory (RSS of its process group) after a one-minute warm-up and at the end
  of the load, and their ratio (the bar: within 20%);
- what the webhook did, from its ledger.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import contextlib

from likkerctl.webhook.ledger import Ledger
from stack import broker
from stack.load import LoadReport, run_load
from tests.helpers import RunningStack, assert_all_gone, start_stack

WARM_UP_S = 60.0


def rss_by_part(stack: RunningStack) -> dict[str, float]:
    """MB of resident memory per part, its whole process group."""
    out: dict[str, float] = {}
    for part, rec in stack.records().items():
        if not rec.is_running():
            continue
        procs = [psutil.Process(rec.pid), *rec.group_members()]
        total = 0
        for p in {p.pid: p for p in procs}.values():
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
        out[part] = round(total / 1e6, 1)
    return out


def memory_breakdown(stack: RunningStack, top: int = 6) -> dict[str, float] | str:
    """The broker's biggest memory categories (`rabbitmq-diagnostics memory_breakdown`), MB."""
    done = subprocess.run(
        [
            str(broker.RABBIT_BIN / "rabbitmq-diagnostics"),
            "-n",
            stack.settings.node_name,
            "memory_breakdown",
            "--formatter",
            "json",
        ],
        env=broker.node_env(stack.settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    try:
        doc = json.loads(done.stdout)
    except ValueError:
        return f"no breakdown: {(done.stderr or done.stdout).strip()[:200]}"
    sizes = {k: v["bytes"] if isinstance(v, dict) else v for k, v in doc.items()}
    ranked = sorted(
        ((k, v) for k, v in sizes.items() if isinstance(v, int | float)), key=lambda kv: -kv[1]
    )
    return {k: round(v / 1e6, 1) for k, v in ranked[:top]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--burst-s", type=float, default=60.0)
    parser.add_argument("--headroom-mb", type=int, default=0, help="0: the whole disk")
    args = parser.parse_args()
    total_s = args.minutes * 60
    steady_s = (total_s - args.burst_s) / 2
    state = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    stack = start_stack(
        state,
        takers=2,
        retry_policy="requeue",
        taker_rate=0.0,
        webhook_mode="enforce",
        # The built-in runbooks act through the disk alert (the redelivery-storm one only
        # reports): with all of a big disk free it never fires, and the bot's likes cycle to
        # the end (docs/BENCHMARKS.md). A headroom of a GB or two should make it fire (not
        # yet measured).
        disk_headroom_bytes=args.headroom_mb * 1_000_000 if args.headroom_mb else None,
    )
    try:
        per_phase = int(args.rate * steady_s * 1.1)
        side = int(per_phase**0.5) + 1
        before_pop = stack.population(users=side, posts=side)
        after_pop = stack.population(users=side, posts=side)
        # Enough distinct pairs for the humans' share of the burst too: a repeated (user,
        # post) is a duplicate by design, not a row of its own.
        burst_side = int((args.rate * args.burst_s * 1.1) ** 0.5) + 1
        burst_pop = stack.population(users=burst_side, posts=burst_side, friday=True)
        gateway = stack.settings.gateway_url
        reports: dict[str, LoadReport] = {}
        rss: dict[str, dict[str, float]] = {}

        def sample_warm() -> None:
            time.sleep(WARM_UP_S)
            rss["warm"] = rss_by_part(stack)

        sampler = threading.Thread(target=sample_warm, daemon=True)
        started = time.monotonic()
        sampler.start()
        for name, pop, scenario, seconds in (
            ("before", before_pop, "normal", steady_s),
            ("burst", burst_pop, "friday", args.burst_s),
            ("after", after_pop, "normal", steady_s),
        ):
            reports[name] = asyncio.run(
                run_load(
                    gateway, pop, scenario=scenario, rate=args.rate, duration_s=seconds, seed=17
                )
            )
            print(name, reports[name].as_json()["statuses"], file=sys.stderr, flush=True)
        load_s = time.monotonic() - started
        rss["end"] = rss_by_part(stack)
        broker_memory = memory_breakdown(stack)
        accepted = [rid for r in reports.values() for rid in r.accepted["user"]]
        drain_started = time.monotonic()
        stored = stack.wait_stored(accepted, timeout=900)
        drain_s = time.monotonic() - drain_started
        counts = Counter(stored.values())
        ledger = Ledger(f"sqlite:///{stack.settings.state_dir / 'likkerctl.db'}").recent(50)
        result: dict[str, Any] = {
            "machine": f"{platform.machine()}, {psutil.cpu_count()} cores",
            "rate": args.rate,
            "load_s": round(load_s, 1),
            "drain_after_load_s": round(drain_s, 1),
            "statuses": {n: dict(r.statuses) for n, r in reports.items()},
            "errors": {n: dict(r.errors) for n, r in reports.items()},
            "achieved_rate": {
                n: round(r.sent / max(r.elapsed_s, 1e-9), 1) for n, r in reports.items()
            },
            "human_accepted": len(accepted),
            "stored_once": counts.get(1, 0),
            "lost": len(accepted) - len(stored),
            "doubled": sum(1 for n in stored.values() if n > 1),
            "bot_accepted": len(reports["burst"].accepted["bot"]),
            "bot_rows": stack.rows_for_bot(burst_pop.bot.bot_id) if burst_pop.bot else None,
            "rss_mb": rss,
            "rss_end_over_warm": {
                p: round(rss["end"][p] / rss["warm"][p], 3)
                for p in rss["end"]
                if rss.get("warm", {}).get(p)
            },
            "rabbitmq_memory_mb_top": broker_memory,
            "webhook": [
                {k: r.get(k) for k in ("alertname", "status", "outcome", "received_at")}
                for r in ledger
            ],
        }
        print(json.dumps(result, indent=1))
    finally:
        assert_all_gone(stack.down())


if __name__ == "__main__":
    main()
