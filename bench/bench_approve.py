"""Benchmark: approve mode's latencies, and crash recovery's, on the real stack.

Run:  .venv/bin/python bench/bench_approve.py [--messages 20000]

Starts a stack in a temp dir, fills a test queue (every 10th message from one bot), and runs
`likkerctl webhook serve` as a process with a runbook that pauses the takers, moves the bot's
messages and resumes them. Reports, from the webhook's ledger, the approvals table and the
audit log (timestamps taken on this machine):

- approve: POST → pending (the plan: every step's dry run), the `webhook approve` command's
  wall time, decision → first step started (the webhook polls every second), decision →
  run finished;
- recovery: after kill -9 mid-move, the restarted webhook's start → healthy, of which the
  recovery itself (mark interrupted, resume the takers, page).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pika

from likkerctl.core.store import approvals
from tests.alertmanager_payload import alert, body
from tests.helpers import assert_all_gone, fill_queue, start_stack, wait_for
from tests.ops.conftest import Cli
from tests.ops.webhook_proc import webhook

RUNBOOK = """
mode = "{mode}"
approve_timeout_s = 600

[runbooks.move]
alerts = ["LikkerBenchMove"]
target = "{src}"

[[runbooks.move.steps]]
step = "takers pause"

[[runbooks.move.steps]]
step = "shovel"
source = "{src}"
destination = "{dst}"
where = "bot = 77"
engine = "client"

[[runbooks.move.steps]]
step = "takers resume"
when = "always"

[[runbooks.move.steps]]
step = "escalate"
when = "escalated"
"""


def ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def queues(amqp_url: str, tag: str) -> tuple[str, str]:
    names = (f"bench.src.{tag}", f"bench.dst.{tag}")
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    for name in names:
        conn.channel().queue_declare(name, durable=True, arguments={"x-queue-type": "quorum"})
    conn.close()
    return names


def depth(amqp_url: str, queue: str) -> int:
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        return int(conn.channel().queue_declare(queue, passive=True).method.message_count)
    finally:
        conn.close()


def finished(hook: Any, key: str) -> dict[str, Any] | None:
    rows = hook.ledger(key)
    return rows[0] if rows and rows[0]["outcome"] not in ("queued", "running", "pending") else None


def bench_approve(cli: Cli, tmp: Path, n: int) -> dict[str, Any]:
    url = cli.stack.settings.amqp_url
    src, dst = queues(url, "approve")
    fill_queue(url, src, n, bot_id=77, declare=False)
    a = alert("LikkerBenchMove")
    with webhook(cli, tmp, RUNBOOK.format(mode="approve", src=src, dst=dst)) as hook:
        assert hook.post(body(a)).status_code == 200
        row = wait_for(lambda: next((r for r in hook.ledger() if r["outcome"] == "pending"), None))
        assert row, hook.ledger()
        began = time.perf_counter()
        env = {"LIKKER_AUDIT_DB_URL": hook.audit_url}
        done = cli("webhook", "approve", str(row["id"]), "--yes", env=env)
        assert done.rc == 0, done.stderr
        command_s = time.perf_counter() - began
        end = wait_for(lambda: finished(hook, row["alert"]), 120, 0.2)
        assert end and end["outcome"] == "ok", end
        approval, _ = approvals.get(hook.audit_url, row["id"])
        assert approval is not None
        decided = ts(approval["decided_at"])
        steps = sorted(
            (e for e in hook.audit(row["alert"]) if not e["dry_run"]), key=lambda e: e["id"]
        )
        first = next(e for e in steps if e["command"] == "takers pause")
        return {
            "messages": n,
            "post_to_pending_s": round(ts(approval["requested_at"]) - ts(row["received_at"]), 2),
            "approve_command_s": round(command_s, 2),
            "decision_to_first_step_s": round(ts(first["started_at"]) - decided, 2),
            "decision_to_finished_s": round(ts(end["finished_at"]) - decided, 2),
            "moved": depth(url, dst),
        }


def bench_recovery(cli: Cli, tmp: Path) -> dict[str, Any]:
    url = cli.stack.settings.amqp_url
    src, dst = queues(url, "recover")
    fill_queue(url, src, 100_000, bot_id=77, declare=False)
    a = alert("LikkerBenchMove")
    book = RUNBOOK.format(mode="enforce", src=src, dst=dst)
    with webhook(cli, tmp, book) as hook:
        hook.post(body(a))
        assert wait_for(lambda: depth(url, dst) >= 1000, 60, 0.05)
        os.kill(hook.proc.pid, signal.SIGKILL)
        hook.proc.wait()
    started = time.time()
    with webhook(cli, tmp, book) as again:
        healthy = time.time()
        [row] = [r for r in again.ledger() if r["alertname"] == "LikkerBenchMove"]
        assert row["outcome"] == "interrupted", row
        recovery = max(ts(e["started_at"]) for e in again.audit() if e["command"] == "runbook move")
        return {
            "start_to_healthy_s": round(healthy - started, 2),
            "recovery_s": round(ts(row["finished_at"]) - recovery, 2),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="bench-approve-"))
    stack = start_stack(state / "stack", takers=2)
    try:
        cli = Cli(stack, state / "config")
        (state / "a").mkdir()
        (state / "r").mkdir()
        result = {
            "approve": bench_approve(cli, state / "a", args.messages),
            "recovery": bench_recovery(cli, state / "r"),
            "machine": f"{platform.machine()} python {platform.python_version()}",
        }
    finally:
        assert_all_gone(stack.down())
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
