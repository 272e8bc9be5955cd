"""Soak: the stack at a steady rate for minutes, a Friday burst in the middle, the webhook in
enforce mode. Not part of the test suite (it takes a quarter of an hour).

Run:  .venv/bin/python bench/bench_soak.py [--rate 500] [--minutes 10] [--burst-s 60]
          [--headroom-mb 0] [--wal-max-mb 32] [--runbooks bench/soak_runbooks.toml|builtin]
          [--fullsweep-after N]

Starts a stack in a temp dir (the legacy `requeue` policy, so the burst is the incident;
the webhook in enforce mode, which should block the bot and move its messages away
unattended), then sends likes at `--rate` from humans on distinct (user, post) pairs for
the first and last parts, and the `friday` scenario (20% of requests from a banned user's
bot) for `--burst-s` in the middle.

The broker's Ra write-ahead log rolls at `--wal-max-mb` (32 MB): at RabbitMQ's 512 MiB a
ten-minute soak never sees it roll, and the node's memory only climbs with its in-memory
tables (docs/BENCHMARKS.md). With a small log the disk is not at risk, so the disk alert
the built-in runbooks act on does not fire; `soak_runbooks.toml` has the storm alert run
the same fix. `--wal-max-mb 0 --runbooks builtin --headroom-mb 2500` is the stack as
`stack up` runs it. Reports:

- lost: every human like answered 202 must end as exactly one row (0 lost, 0 doubled);
- each part's memory (RSS of its process group): its level after warm-up and at the end
  (medians of a minute's samples, `LEVEL_S`), their ratio (the bar: within 20%), the
  single samples at warm-up and at the end, and the timeline every `SAMPLE_S`;
- each part's CPU seconds during the load, and the broker VM's `fullsweep_after`;
- the broker's biggest memory categories at warm-up, at the end and after a full GC, and
  Prometheus' head series;
- what the webhook did, from its ledger.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import contextlib

from likkerctl.webhook.ledger import Ledger
from stack import broker
from stack.load import LoadReport, run_load
from tests.helpers import RunningStack, assert_all_gone, start_stack

# Each part's RSS every SAMPLE_S. Its level after warm-up is the median of the samples in
# the LEVEL_S after WARM_UP_S, its level at the end the median of the load's last LEVEL_S:
# the broker's memory saw-tooths with its write-ahead log (tens of MB), so one sample on
# either side measures the phase of a tooth, not a level. Single samples are reported too.
WARM_UP_S = 60.0
LEVEL_S = 60.0
SAMPLE_S = 10.0
SOAK_RUNBOOKS = Path(__file__).with_name("soak_runbooks.toml")


def by_part(stack: RunningStack, measure: Callable[[psutil.Process], float]) -> dict[str, float]:
    """`measure` summed over each running part's whole process group."""
    out: dict[str, float] = {}
    for part, rec in stack.records().items():
        if not rec.is_running():
            continue
        procs = [psutil.Process(rec.pid), *rec.group_members()]
        total = 0.0
        for p in {p.pid: p for p in procs}.values():
            with contextlib.suppress(psutil.Error):
                total += measure(p)
        out[part] = round(total, 1)
    return out


def rss_by_part(stack: RunningStack) -> dict[str, float]:
    """MB of resident memory per part."""
    return by_part(stack, lambda p: p.memory_info().rss / 1e6)


def cpu_by_part(stack: RunningStack) -> dict[str, float]:
    """CPU seconds (user + system) each part's live processes have used so far."""
    return by_part(stack, lambda p: sum(p.cpu_times()[:2]))


def broker_fullsweep_after(stack: RunningStack) -> str:
    """What the broker's VM runs with (`erlang:system_info(fullsweep_after)`): proof the
    setting reached it, not just the environment."""
    node = stack.settings.broker_nodes[0]
    done = broker.rabbitmqctl(stack.settings, node, "eval", "erlang:system_info(fullsweep_after).")
    return (done.stdout or done.stderr).strip()


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


def head_series(stack: RunningStack) -> int | None:
    """Series in Prometheus' head block (`/api/v1/status/tsdb`; it does not scrape itself)."""
    try:
        answer = requests.get(f"{stack.settings.prometheus_url}/api/v1/status/tsdb", timeout=10)
        return int(answer.json()["data"]["headStats"]["numSeries"])
    except (requests.RequestException, ValueError, KeyError, TypeError):
        return None


def broker_after_full_gc(stack: RunningStack) -> dict[str, Any]:
    """The broker after `rabbitmqctl force_gc` (every process a full sweep), load over: what of
    its growth was garbage in idle processes' heaps rather than memory it still holds. A
    diagnostic, reported beside the bar's figures, never instead of them."""
    node = stack.settings.broker_nodes[0]
    done = broker.rabbitmqctl(stack.settings, node, "force_gc")
    time.sleep(5)
    return {
        "ok": done.returncode == 0,
        "rss_mb": rss_by_part(stack).get("rabbitmq"),
        "breakdown": memory_breakdown(stack),
    }


def median_by_part(samples: list[dict[str, float]]) -> dict[str, float]:
    parts = {p for r in samples for p in r if p != "t"}
    return {p: round(statistics.median(r[p] for r in samples if p in r), 1) for p in parts}


def ratio(pair: dict[str, dict[str, float]]) -> dict[str, float]:
    """end / warm per part."""
    warm, end = pair.get("warm", {}), pair.get("end", {})
    return {p: round(end[p] / warm[p], 3) for p in sorted(end) if warm.get(p)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--burst-s", type=float, default=60.0)
    parser.add_argument("--headroom-mb", type=int, default=0, help="0: the whole disk")
    parser.add_argument(
        "--wal-max-mb",
        type=int,
        default=32,
        help="the broker's raft.wal_max_size_bytes in MB; 0: RabbitMQ's 512 MiB",
    )
    parser.add_argument(
        "--runbooks",
        default=str(SOAK_RUNBOOKS),
        help="the webhook's runbook file, or 'builtin' for likkerctl's own",
    )
    parser.add_argument(
        "--fullsweep-after",
        type=int,
        default=None,
        help="the broker VM's ERL_FULLSWEEP_AFTER; default: the stack's (0); Erlang's is 65535",
    )
    args = parser.parse_args()
    total_s = args.minutes * 60
    steady_s = (total_s - args.burst_s) / 2
    state = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    gc = {} if args.fullsweep_after is None else {"broker_fullsweep_after": args.fullsweep_after}
    stack = start_stack(
        state,
        takers=2,
        retry_policy="requeue",
        taker_rate=0.0,
        webhook_mode="enforce",
        # The built-in runbooks act only through the disk alert (the redelivery-storm one
        # reports): it fires on the WAL's 512 MiB tooth with a GB or two of headroom, and not
        # with a small WAL, where the disk is not at risk (docs/BENCHMARKS.md).
        webhook_runbooks=None if args.runbooks == "builtin" else str(Path(args.runbooks).resolve()),
        disk_headroom_bytes=args.headroom_mb * 1_000_000 if args.headroom_mb else None,
        raft_wal_max_bytes=args.wal_max_mb * 1_000_000 or None,
        **gc,
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

        timeline: list[dict[str, float]] = []
        broker_memory: dict[str, Any] = {}
        prom_series: dict[str, int | None] = {}
        load_over = threading.Event()

        def sample() -> None:
            while not load_over.wait(SAMPLE_S - (time.monotonic() - started) % SAMPLE_S):
                t = time.monotonic() - started
                timeline.append({"t": round(t), **rss_by_part(stack)})
                if "warm" not in rss and t >= WARM_UP_S:
                    rss["warm"] = timeline[-1]
                    broker_memory["warm"] = memory_breakdown(stack)
                    prom_series["warm"] = head_series(stack)

        sampler = threading.Thread(target=sample, daemon=True)
        cpu_before = cpu_by_part(stack)
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
        load_over.set()
        sampler.join()
        cpu_after = cpu_by_part(stack)
        rss["end"] = rss_by_part(stack)
        broker_memory["end"] = memory_breakdown(stack)
        prom_series["end"] = head_series(stack)
        levels = {
            "warm": median_by_part(
                [r for r in timeline if WARM_UP_S <= r["t"] < WARM_UP_S + LEVEL_S]
            ),
            "end": median_by_part([r for r in timeline if r["t"] >= load_s - LEVEL_S]),
        }
        level_ratio = ratio(levels)
        accepted = [rid for r in reports.values() for rid in r.accepted["user"]]
        drain_started = time.monotonic()
        stored = stack.wait_stored(accepted, timeout=900)
        drain_s = time.monotonic() - drain_started
        after_gc = broker_after_full_gc(stack)
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
            "bot_rows": (
                stack.rows_for_bot(burst_pop.bot.bot_id)
                if burst_pop.bot and burst_pop.bot.bot_id is not None
                else None
            ),
            "wal_max_mb": args.wal_max_mb or "RabbitMQ's default (512 MiB)",
            "runbooks": args.runbooks,
            "broker_fullsweep_after": broker_fullsweep_after(stack),
            "cpu_s_during_load": {
                p: round(cpu_after[p] - cpu_before[p], 1)
                for p in sorted(cpu_after)
                if p in cpu_before
            },
            "rss_level_mb": levels,
            "rss_level_end_over_warm": level_ratio,
            "over_the_bar": sorted(p for p, r in level_ratio.items() if r > 1.2),
            "rss_point_mb": rss,
            "rss_point_end_over_warm": ratio(rss),
            "rss_timeline_mb": timeline,
            "rabbitmq_memory_mb_top": broker_memory,
            "rabbitmq_after_force_gc": after_gc,
            "prometheus_head_series": prom_series,
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
