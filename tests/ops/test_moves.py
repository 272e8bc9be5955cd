"""shovel, purge and dlq replay on a real broker: ids counted before and after, kill -9 included."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import urllib.parse
import uuid
from collections.abc import Callable
from pathlib import Path

import pika
import pytest
import requests

from likkerctl.cli import errors as exit_codes
from likkerctl.core import contract
from likkerctl.core.messages.archive import read_archive
from tests.helpers import RunningStack, drain_ids, fill_queue, wait_for
from tests.ops.conftest import Cli, depth

BOT = 4242


def split(ids: dict[str, int | None]) -> tuple[set[str], set[str]]:
    bot = {i for i, b in ids.items() if b == BOT}
    return bot, set(ids) - bot


@pytest.mark.parametrize("engine", ["auto", "client"])
def test_selective_shovel_moves_exactly_the_bots_messages(
    cli: Cli, ops_stack: RunningStack, queues: tuple[str, str], engine: str
) -> None:
    src, dst = queues
    ids = fill_queue(
        ops_stack.settings.amqp_url, src, 3000, bot_every=10, bot_id=BOT, declare=False
    )
    run = cli("shovel", src, dst, "--where", f"bot={BOT}", "--engine", engine, "--yes", "--json")
    assert run.rc == 0, run.stderr
    result = run.json
    assert result["engine"] == ("broker" if engine == "auto" else "client")
    assert result["total"] == result["scanned"] == 3000
    bot, others = split(ids)
    in_dst = drain_ids(ops_stack.settings.amqp_url, dst)
    in_src = drain_ids(ops_stack.settings.amqp_url, src)
    assert set(in_dst) == bot  # nothing lost, nothing foreign
    assert set(in_src) == others
    if engine == "auto":
        # The shovel plugin's last acks are sometimes dropped by RabbitMQ 3.10 when it stops
        # (see docs/CLI.md): what it had copied comes back, at most one prefetch window
        # (1,000): a non-matching message is then in the source twice, a matching one is
        # moved again by the sweep.
        assert len(in_src) - len(others) + len(in_dst) - len(bot) <= 1000
    else:
        assert collections.Counter(in_dst) == collections.Counter(bot)  # each once
        assert collections.Counter(in_src) == collections.Counter(others)
    if engine == "client":
        assert (result["moved"], result["kept"]) == (len(bot), len(others))


def test_client_engine_takes_predicates_the_broker_cannot(
    cli: Cli, ops_stack: RunningStack, queues: tuple[str, str]
) -> None:
    src, dst = queues
    ids = fill_queue(ops_stack.settings.amqp_url, src, 1000, bot_every=4, bot_id=BOT, declare=False)
    # Humans only (absent header), and a comparison on deliveries: not expressible as bindings.
    run = cli("shovel", src, dst, "--where", "bot=none and deliveries < 5", "--yes", "--json")
    assert run.rc == 0, run.stderr
    assert run.json["engine"] == "client"
    humans = {i for i, b in ids.items() if b is None}
    assert set(drain_ids(ops_stack.settings.amqp_url, dst)) == humans
    assert set(drain_ids(ops_stack.settings.amqp_url, src)) == set(ids) - humans


def test_limit_moves_at_most_n(cli: Cli, ops_stack: RunningStack, queues: tuple[str, str]) -> None:
    src, dst = queues
    ids = fill_queue(ops_stack.settings.amqp_url, src, 500, bot_every=2, bot_id=BOT, declare=False)
    run = cli("shovel", src, dst, "--where", f"bot={BOT}", "--limit", "40", "--yes", "--json")
    assert run.rc == 0, run.stderr
    moved = drain_ids(ops_stack.settings.amqp_url, dst)
    kept = drain_ids(ops_stack.settings.amqp_url, src)
    assert len(moved) == 40 and all(ids[i] == BOT for i in moved)
    assert collections.Counter(moved + kept) == collections.Counter(list(ids))


def test_bad_predicate_is_exit_2_with_a_pointer_and_moves_nothing(
    cli: Cli, ops_stack: RunningStack, queues: tuple[str, str]
) -> None:
    src, dst = queues
    fill_queue(ops_stack.settings.amqp_url, src, 100, declare=False)
    run = cli("shovel", src, dst, "--where", "bot=42 and deliverys>3", "--yes")
    assert run.rc == 2
    assert "bad predicate" in run.stderr and "column 12" in run.stderr and "^" in run.stderr
    assert depth(ops_stack, src) == 100 and depth(ops_stack, dst) == 0


def test_without_yes_and_without_a_terminal_nothing_happens(
    cli: Cli, ops_stack: RunningStack, queues: tuple[str, str]
) -> None:
    src, dst = queues
    fill_queue(ops_stack.settings.amqp_url, src, 50, declare=False)
    run = cli("shovel", src, dst)
    assert run.rc == 2 and "--yes" in run.stderr
    assert depth(ops_stack, src) == 50 and depth(ops_stack, dst) == 0


def test_dry_run_says_what_would_happen_changes_nothing_and_is_audited(
    cli: Cli, ops_stack: RunningStack, queues: tuple[str, str]
) -> None:
    src, dst = queues
    fill_queue(ops_stack.settings.amqp_url, src, 200, bot_every=10, bot_id=BOT, declare=False)
    run = cli("shovel", src, dst, "--where", f"bot={BOT}", "--dry-run", "--json")
    assert run.rc == 0, run.stderr
    plan = run.json
    assert plan["dry_run"] is True and plan["messages_in_source"] == 200
    assert plan["engine"] == "broker" and plan["estimated_matching"] == 20
    assert plan["bindings"] == [{"x-match": "all", contract.H_BOT: BOT}]
    assert depth(ops_stack, src) == 200 and depth(ops_stack, dst) == 0
    entries = cli("audit", "--json", "--command", "shovel").json["entries"]
    assert entries[0]["dry_run"] is True and entries[0]["params"]["source"] == src
    assert entries[0]["result"] == "ok"


def test_unknown_queue_is_exit_5(cli: Cli, queues: tuple[str, str]) -> None:
    run = cli("shovel", "no.such.queue", queues[1], "--yes")
    assert run.rc == 5 and "no.such.queue" in run.stderr


def test_whole_queue_shovel_uses_the_broker(
    cli: Cli, ops_stack: RunningStack, queues: tuple[str, str]
) -> None:
    src, dst = queues
    ids = fill_queue(ops_stack.settings.amqp_url, src, 2000, declare=False)
    run = cli("shovel", src, dst, "--yes", "--json")
    assert run.rc == 0, run.stderr
    assert run.json["engine"] == "broker" and run.json["moved"] == 2000
    moved = drain_ids(ops_stack.settings.amqp_url, dst)
    assert collections.Counter(moved) == collections.Counter(list(ids))


# -- kill -9 in the middle -------------------------------------------------------------
def _kill_when(cli: Cli, args: list[str], ready: Callable[[], object], timeout: float = 60) -> None:
    proc = cli.popen(*args)
    try:
        assert wait_for(lambda: ready() or proc.poll() is not None, timeout=timeout, interval=0.05)
        assert proc.poll() is None, f"finished before the kill: {proc.communicate()}"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()


def _doubled_after_rerun(url: str, src: str, dst: str, ids: dict[str, int | None]) -> int:
    """Drain both queues; nothing lost, nothing on the wrong side: each bot message is in the
    destination, every other one in the source. Returns how many extra copies there are."""
    bot, others = split(ids)
    in_dst = collections.Counter(drain_ids(url, dst))
    in_src = collections.Counter(drain_ids(url, src))
    assert set(in_dst) == bot
    assert set(in_src) == others
    return sum(c - 1 for c in in_dst.values()) + sum(c - 1 for c in in_src.values())


def test_client_shovel_killed_half_way_then_rerun_loses_nothing(
    cli: Cli, ops_stack: RunningStack, queues: tuple[str, str]
) -> None:
    src, dst = queues
    url = ops_stack.settings.amqp_url
    n = 200_000
    ids = fill_queue(url, src, n, bot_every=10, bot_id=BOT, declare=False)
    args = ["shovel", src, dst, "--where", f"bot={BOT}", "--engine", "client", "--yes", "--json"]
    # Half-way: half of the bot's 20,000 messages are at the destination.
    _kill_when(cli, args, lambda: depth(ops_stack, dst) >= n // 20)
    first = depth(ops_stack, dst)
    assert first < n // 10, "the kill came too late to prove anything"
    run = cli(*args)
    assert run.rc == 0, run.stderr
    # At-least-once: a copy confirmed at its target whose source ack had not gone out when
    # the process died is there twice. At most the in-flight window (prefetch 2,000).
    doubled = _doubled_after_rerun(url, src, dst, ids)
    assert doubled <= 2000, doubled
    print(f"kill -9 at {first} moved: {doubled} duplicate(s) from the in-flight window")


def test_broker_shovel_killed_keeps_running_and_rerun_cleans_up(
    cli: Cli, ops_stack: RunningStack, queues: tuple[str, str]
) -> None:
    src, dst = queues
    url = ops_stack.settings.amqp_url
    n = 200_000
    ids = fill_queue(url, src, n, bot_every=10, bot_id=BOT, declare=False)
    args = ["shovel", src, dst, "--where", f"bot={BOT}", "--yes", "--json"]
    _kill_when(cli, args, lambda: depth(ops_stack, dst) >= 1000)
    # The shovel lives in the broker: the second run waits for it, then sweeps its exchanges.
    run = cli(*args)
    assert run.rc == 0, run.stderr
    # At-least-once (docs/CLI.md, "Known duplicates"): when a shovel stops, RabbitMQ 3.10's
    # quorum queues sometimes drop its last acks, and what it had already copied comes back
    # to the source, at most one prefetch window (1,000). The rerun's shovel then moves the
    # matching ones of that window again, and a non-matching one is at the source's tail
    # twice. Two shovels stop here (the killed run's and the rerun's): at most 2,000 copies.
    doubled = _doubled_after_rerun(url, src, dst, ids)
    assert doubled <= 2000, doubled
    print(f"broker shovel killed and rerun: {doubled} duplicate(s) from dropped acks")
    leftovers = [
        e["name"] for e in ops_stack.mgmt("exchanges/%2F") if e["name"].startswith("likkerctl.")
    ]
    assert leftovers == []


def _shovel_connections(stack: RunningStack) -> list[str]:
    return [
        c["name"]
        for c in stack.mgmt("connections")
        if "Shovel" in str(c.get("client_properties", {}).get("connection_name", ""))
    ]


def test_broker_shovel_whose_connection_is_closed_loses_nothing(
    cli: Cli, ops_stack: RunningStack, queues: tuple[str, str]
) -> None:
    """Closing a running shovel's connections (management API) mid-move: on 3.10.8 here the
    move sometimes goes on to the end and sometimes fails, its shovel `terminated` and not
    restarted. Either way nothing is lost: a failed move says so, leaves nothing of it in
    the broker, and running it again finishes the move."""
    src, dst = queues
    url = ops_stack.settings.amqp_url
    n = 200_000
    ids = fill_queue(url, src, n, declare=False)
    args = ["shovel", src, dst, "--yes", "--json"]
    proc = cli.popen(*args)
    try:
        assert wait_for(lambda: depth(ops_stack, dst) >= 1000, timeout=60, interval=0.05)
        conns = wait_for(lambda: _shovel_connections(ops_stack), timeout=10)
        assert conns, "the shovel's connections were not found"
        left_at_close = depth(ops_stack, src)
        for name in conns:
            # Closing one of its two connections may close the other: that one is gone (404).
            with contextlib.suppress(requests.HTTPError):
                ops_stack.mgmt(f"connections/{urllib.parse.quote(name, safe='')}", method="DELETE")
        _out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert left_at_close > 10_000, "the move had (nearly) finished before the connection closed"
    if proc.returncode != 0:
        assert proc.returncode == exit_codes.FAILED, err
        assert "failed" in err and "unmoved messages are still in the source" in err, err
        assert not [p for p in ops_stack.mgmt("parameters/shovel") if src in p["name"]]
        run = cli(*args)
        assert run.rc == 0, run.stderr
    in_dst = collections.Counter(drain_ids(url, dst))
    assert set(in_dst) == set(ids)  # nothing lost
    assert drain_ids(url, src) == []
    # What the closed shovel had copied but not acked came back to the source and was moved
    # again: at most its window (1,000), and one more for each shovel that stopped.
    doubled = sum(c - 1 for c in in_dst.values())
    assert doubled <= 2000, doubled
    print(
        f"shovel connections closed at {n - left_at_close:,} moved: first run exit "
        f"{proc.returncode}, {doubled} duplicate(s)"
    )


# -- purge ----------------------------------------------------------------------------
def test_selective_purge_archives_exactly_what_it_deletes(
    cli: Cli, ops_stack: RunningStack, queues: tuple[str, str], tmp_path: Path
) -> None:
    src, _ = queues
    ids = fill_queue(ops_stack.settings.amqp_url, src, 1000, bot_every=5, bot_id=BOT, declare=False)
    archive = tmp_path / "purged.jsonl"
    run = cli("purge", src, "--where", f"bot={BOT}", "--archive", str(archive), "--yes", "--json")
    assert run.rc == 0, run.stderr
    bot, others = split(ids)
    lines = read_archive(archive)
    assert collections.Counter(r["properties"]["message_id"] for r in lines) == collections.Counter(
        bot
    )
    assert json.loads(lines[0]["body"])["actor"]["bot_id"] == BOT
    assert lines[0]["properties"]["headers"][contract.H_BOT] == BOT
    assert collections.Counter(drain_ids(ops_stack.settings.amqp_url, src)) == collections.Counter(
        others
    )


def test_whole_purge_archives_by_default_and_no_archive_uses_the_broker(
    cli: Cli, ops_stack: RunningStack, queues: tuple[str, str]
) -> None:
    src, dst = queues
    url = ops_stack.settings.amqp_url
    ids = fill_queue(url, src, 700, declare=False)
    run = cli("purge", src, "--yes", "--json")
    assert run.rc == 0, run.stderr
    path = Path(run.json["destination"].removeprefix("file:"))
    assert path.parent == ops_stack.settings.state_dir / "archive"
    assert {r["properties"]["message_id"] for r in read_archive(path)} == set(ids)
    assert depth(ops_stack, src) == 0
    fill_queue(url, dst, 300, declare=False)
    run = cli("purge", dst, "--no-archive", "--yes", "--json")
    assert run.rc == 0, run.stderr
    assert run.json == {
        "queue": dst,
        "purged": 300,
        "archive": None,
        "engine": "broker",
        "summary": f"purged 300 message(s) from {dst} (not archived)",
    }
    assert depth(ops_stack, dst) == 0


def test_purge_dry_run_changes_nothing(
    cli: Cli, ops_stack: RunningStack, queues: tuple[str, str]
) -> None:
    src, _ = queues
    fill_queue(ops_stack.settings.amqp_url, src, 120, declare=False)
    run = cli("purge", src, "--no-archive", "--dry-run")
    assert run.rc == 0 and "would delete 120 message(s)" in run.stdout
    assert depth(ops_stack, src) == 120


# -- dlq ------------------------------------------------------------------------------
def _dead_letters(url: str, dlq: str, reasons: dict[str, str]) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    ch.queue_declare(dlq, durable=True, arguments={"x-queue-type": "quorum"})
    ch.confirm_delivery()
    for i, (request_id, reason) in enumerate(reasons.items()):
        msg = contract.new_like(
            7, contract.Actor(100 + i % 2, BOT if reason == "forbidden" else None), request_id
        )
        props = msg.properties()
        props.headers[contract.H_FAILURE] = reason
        ch.basic_publish("", dlq, msg.body(), props)
    conn.close()


def test_dlq_list_groups_and_replay_moves_back_selected(
    cli: Cli, ops_stack: RunningStack, queues: tuple[str, str]
) -> None:
    _, target = queues
    url = ops_stack.settings.amqp_url
    dlq = f"test.dlq.{uuid.uuid4().hex[:8]}"
    reasons = {
        str(uuid.uuid4()): ("forbidden" if i % 3 else "retries-exhausted") for i in range(90)
    }
    _dead_letters(url, dlq, reasons)
    env = {"LIKKER_DLQ": dlq}
    listing = cli("dlq", "list", "--json", env=env)
    assert listing.rc == 0, listing.stderr
    assert listing.json["by_reason"] == {"forbidden": 60, "retries-exhausted": 30}
    assert {"reason": "forbidden", "actor": f"bot:{BOT}", "messages": 60} in listing.json["groups"]
    run = cli(
        "dlq",
        "replay",
        "--where",
        "reason=retries-exhausted",
        "--to",
        target,
        "--yes",
        "--json",
        env=env,
    )
    assert run.rc == 0, run.stderr
    replayed = drain_ids(url, target)
    assert collections.Counter(replayed) == collections.Counter(
        i for i, r in reasons.items() if r == "retries-exhausted"
    )
    assert sorted(drain_ids(url, dlq)) == sorted(i for i, r in reasons.items() if r == "forbidden")
    ops_stack.mgmt(f"queues/%2F/{dlq}", "DELETE")
