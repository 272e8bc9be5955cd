"""Benchmark: from Alertmanager's POST to the runbook's last step, on the real stack.

Run:  .venv/bin/python bench/bench_webhook.py [--headroom 600MB] [--rate 150]

Starts a stack in a temp dir (requeue, small disk headroom, webhook in enforce mode), sends
the `friday` load, and waits for the built-in disk-full runbook to finish. Reports, from the
webhook's ledger and the audit log (all timestamps taken on this machine):

- when Prometheus's alert became active, when Alertmanager delivered it (the webhook's
  receive time: Alertmanager's POST), when each step started and ended;
- POST → fixed: until `takers resume` ended (bot blocked, its messages in the DLQ);
- POST → last step: until `verify-forecast` ended (it waits `settle_s` = 45 s by design).

Each step's time is also given as a share of the whole, so runs on a noisy machine compare.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from likkerctl.core.store.audit import entries
from likkerctl.webhook.ledger import Ledger
from stack.settings import StackSettings
from tests.helpers import assert_all_gone, start_stack, wait_for

ALERT = "LikkerBrokerDiskFullWithinOneHour"


def ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def run(headroom: int, rate: float) -> dict[str, Any]:
    state = Path(tempfile.mkdtemp(prefix="bench-webhook-"))
    stack = start_stack(
        state,
        takers=2,
        retry_policy="requeue",
        taker_rate=0.0,
        disk_headroom_bytes=headroom,
        webhook_mode="enforce",
    )
    settings: StackSettings = stack.settings
    audit_url = f"sqlite:///{state / 'likkerctl.db'}"
    try:
        pop = stack.population(users=20, posts=10, friday=True)
        join = stack.load_in_background(
            pop, scenario="friday", rate=rate, duration_s=150, bot_share=0.5, concurrency=16
        )
        try:

            def finished() -> dict[str, Any] | None:
                rows = [
                    r
                    for r in Ledger(audit_url).recent(50)
                    if r["alertname"] == ALERT and r["status"] == "firing"
                ]
                done = rows and rows[0]["outcome"] not in ("queued", "running")
                return rows[0] if done else None

            row = wait_for(finished, 420, 2)
            alerts = stack.http.get(f"{settings.prometheus_url}/api/v1/alerts", timeout=5).json()
            active = [
                a["activeAt"] for a in alerts["data"]["alerts"] if a["labels"]["alertname"] == ALERT
            ]
        finally:
            join()
        assert row, "the disk-full runbook never finished"
        received = ts(row["received_at"])
        rows = entries(audit_url, 200, alert=row["alert"])
        steps = sorted(
            (e for e in rows if not e["command"].startswith("runbook")), key=lambda e: e["id"]
        )
        last = ts(row["finished_at"])
        fixed = max(ts(e["finished_at"]) for e in steps if e["command"] == "takers resume")
        total = last - received
        return {
            "outcome": row["outcome"],
            "prometheus_active_to_post_s": round(received - ts(active[0]), 1) if active else None,
            "post_to_fixed_s": round(fixed - received, 2),
            "post_to_last_step_s": round(total, 2),
            "steps": [
                {
                    "step": e["command"],
                    "seconds": round(ts(e["finished_at"]) - ts(e["started_at"]), 2),
                    "share": round((ts(e["finished_at"]) - ts(e["started_at"])) / total, 3),
                    "result": e["result"],
                }
                for e in steps
            ],
        }
    finally:
        assert_all_gone(stack.down())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--headroom", type=int, default=600_000_000, help="bytes")
    parser.add_argument("--rate", type=float, default=150.0, help="likes/s of the load")
    args = parser.parse_args()
    result = run(args.headroom, args.rate)
    result["machine"] = f"{platform.machine()} python {platform.python_version()}"
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
