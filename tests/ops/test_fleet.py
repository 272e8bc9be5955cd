"""takers pause/resume over the control exchange, bots block/unblock, and the audit log."""

from __future__ import annotations

import pika

from tests.helpers import RunningStack, wait_for
from tests.ops.conftest import Cli


def consumers(stack: RunningStack) -> int:
    conn = pika.BlockingConnection(pika.URLParameters(stack.settings.amqp_url))
    try:
        return int(
            conn.channel().queue_declare("likker.actions", passive=True).method.consumer_count
        )
    finally:
        conn.close()


def test_pause_and_resume_takers(cli: Cli, ops_stack: RunningStack) -> None:
    dry = cli("takers", "pause", "--dry-run", "--json")
    assert dry.rc == 0 and dry.json["would_change"] == ["taker-1", "taker-2"]
    assert consumers(ops_stack) == 2
    run = cli("takers", "pause", "--yes", "--json")
    assert run.rc == 0, run.stderr
    assert {t["state"] for t in run.json["takers"]} == {"paused"}
    assert wait_for(lambda: consumers(ops_stack) == 0, timeout=10)
    one = cli("takers", "resume", "--id", "taker-2", "--yes", "--json")
    assert one.rc == 0 and [t["taker_id"] for t in one.json["takers"]] == ["taker-2"]
    status = cli("takers", "status", "--json").json["takers"]
    assert [t["state"] for t in status] == ["paused", "running"]
    assert cli("takers", "resume", "--yes").rc == 0
    assert wait_for(lambda: consumers(ops_stack) == 2, timeout=10)
    assert cli("takers", "status", "--id", "taker-9").rc == 5
    audit = cli("audit", "--json").json["entries"]
    commands = [(e["command"], e["params"].get("target"), e["dry_run"]) for e in audit[:4]]
    assert commands == [
        ("takers resume", "*", False),
        ("takers resume", "taker-2", False),
        ("takers pause", "*", False),
        ("takers pause", "*", True),
    ]


def test_block_bot_gets_403_at_the_gateway_then_unblock(cli: Cli, ops_stack: RunningStack) -> None:
    owner = ops_stack.new_user()
    author = ops_stack.new_user()
    post = ops_stack.new_post(author["token"])
    bot = ops_stack.new_bot(owner["user_id"], "liker")
    assert ops_stack.like(post, bot["token"]).status_code == 202
    run = cli("bots", "block", str(bot["bot_id"]), "--reason", "friday incident", "--yes", "--json")
    assert run.rc == 0, run.stderr
    assert run.json["blocked"] is True and run.json["blocked_reason"] == "friday incident"
    assert ops_stack.like(post, bot["token"]).status_code == 403
    listed = cli("bots", "list", "--blocked", "--json").json["bots"]
    assert bot["bot_id"] in [b["bot_id"] for b in listed]
    assert cli("bots", "unblock", str(bot["bot_id"]), "--yes").rc == 0
    assert wait_for(lambda: ops_stack.like(post, bot["token"]).status_code == 202, timeout=35)
    entry = cli("audit", "--json", "--command", "bots block").json["entries"][0]
    assert entry["params"] == {"bot": bot["bot_id"], "reason": "friday incident"}
    assert entry["result"] == "ok" and entry["os_user"]


def test_bot_errors(cli: Cli) -> None:
    assert cli("bots", "block", "999999", "--reason", "x", "--yes").rc == 5
    no_token = cli("bots", "list", env={"LIKKER_ADMIN_TOKEN": "not-the-token"})
    assert no_token.rc == 4 and "refused" in no_token.stderr
    assert cli("bots", "block", "1", "--reason", " ", "--yes").rc == 2


def test_takers_status_shows_batch_size_store_time_and_lag(
    cli: Cli, ops_stack: RunningStack
) -> None:
    pop = ops_stack.population(users=20, posts=20)  # more pairs than likes: no repeats
    report = ops_stack.load(pop, scenario="normal", rate=200, duration_s=1)
    assert len(ops_stack.wait_stored(report.accepted["user"])) == report.sent > 100
    rows = cli("takers", "status", "--json").json["takers"]
    limit = ops_stack.settings.taker_batch
    assert [t["batch_limit"] for t in rows] == [limit, limit]
    busy = [t for t in rows if t["batch_size"] is not None]  # batched in the last 10 s
    assert busy and all(1 <= t["batch_size"] <= limit and t["store_ms"] > 0 for t in busy)
    assert all(t["lag_s"] >= 0 for t in rows)
    table = cli("takers", "status")
    assert table.rc == 0, table.stderr
    header = next(line for line in table.stdout.splitlines() if "taker " in line)
    assert all(col in header for col in ("batch", "store ms", "lag", "failures"))
    assert f"/ {limit}" in table.stdout
