"""Approve mode end to end: a real Alertmanager delivers the alert, the webhook plans and
waits, `likkerctl webhook approve|reject` decides from another process, through the
database. Messages counted by id: an approved run moves exactly the bot's, a rejected or
expired one moves nothing.

The runbook pauses the operations stack's takers, moves bot 77's messages from a test queue
to another, and resumes them; it pages through the same private Alertmanager.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.helpers import RunningStack, drain_ids, fill_queue, wait_for
from tests.ops.conftest import Cli, depth
from tests.ops.test_fleet import consumers
from tests.ops.webhook_proc import Alertmanager, Webhook, alertmanager, webhook

BOT = 77
APPROVE = """
mode = "approve"
approve_timeout_s = {timeout}

[runbooks.move]
alerts = ["LikkerTestApprove"]
target = "{{labels[queue]}}"

[[runbooks.move.steps]]
step = "takers pause"

[[runbooks.move.steps]]
step = "shovel"
source = "{{labels[queue]}}"
destination = "{{labels[dlq]}}"
where = "bot = {bot}"
engine = "client"

[[runbooks.move.steps]]
step = "takers resume"
when = "always"

[[runbooks.move.steps]]
step = "escalate"
when = "escalated"

[[runbooks.move.steps]]
step = "escalate"
when = "pending"
alertname = "LikkerRunbookAwaitsApproval"
summary = "{{runbook}} awaits approval: likkerctl webhook approve {{run}} before {{expires_at}}"
"""


@pytest.fixture(scope="module")
def am(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Alertmanager]:
    with alertmanager(tmp_path_factory.mktemp("alertmanager")) as running:
        yield running


@pytest.fixture
def filled(ops_stack: RunningStack, queues: tuple[str, str]) -> dict[str, int | None]:
    return fill_queue(ops_stack.settings.amqp_url, queues[0], 2000, bot_id=BOT, declare=False)


def approve_hook(cli: Cli, tmp: Path, am: Alertmanager, timeout: float) -> Any:
    book = APPROVE.format(timeout=timeout, bot=BOT)
    return webhook(
        cli,
        tmp,
        book,
        env={"LIKKER_ALERTMANAGER_URL": am.url},
        port=am.webhook_port,
        token=am.token,
    )


def fire(am: Alertmanager, queues: tuple[str, str]) -> dict[str, str]:
    labels = {"queue": queues[0], "dlq": queues[1], "test": uuid.uuid4().hex[:8]}
    am.fire("LikkerTestApprove", labels)
    return labels


def pending_run(hook: Webhook) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        rows = [r for r in hook.ledger() if r["alertname"] == "LikkerTestApprove"]
        return rows[0] if rows and rows[0]["outcome"] == "pending" else None

    row = wait_for(found, 60, 0.3)
    assert row, hook.ledger() or hook.log.read_text()[-3000:]
    return dict(row)


def settled(hook: Webhook, run: int) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        row = next((r for r in hook.ledger() if r["id"] == run), None)
        return row if row and row["outcome"] not in ("pending", "running") else None

    row = wait_for(done, 60, 0.3)
    assert row, hook.ledger() or hook.log.read_text()[-3000:]
    return dict(row)


def pages(am: Alertmanager, alertname: str, row: dict[str, Any]) -> list[dict[str, Any]]:
    """What the webhook posted to Alertmanager about this run of this alert."""
    fingerprint = row["alert"].partition(":")[0]
    return am.alerts(alertname=alertname, source_fingerprint=fingerprint, run=str(row["id"]))


def acted(hook: Webhook, key: str) -> Counter[str]:
    """The audit rows that were not dry runs, by command."""
    return Counter(e["command"] for e in hook.audit(key) if not e["dry_run"])


def test_approved_run_does_every_step_once_with_the_approver(
    cli: Cli,
    ops_stack: RunningStack,
    queues: tuple[str, str],
    am: Alertmanager,
    filled: dict[str, int | None],
    tmp_path: Path,
) -> None:
    src, dst = queues
    with approve_hook(cli, tmp_path, am, timeout=120) as hook:
        labels = fire(am, queues)
        row = pending_run(hook)
        run, key = row["id"], row["alert"]
        # The plan: every step's dry run, in order; nothing done yet; a human was paged.
        plan = row["approval"]["plan"]["steps"]
        assert [(s["step"], s["status"]) for s in plan] == [
            ("takers pause", "ok"),
            ("shovel", "ok"),
            ("takers resume", "ok"),
            ("escalate", "skipped"),
            ("escalate", "skipped"),
        ]
        assert plan[1]["summary"].startswith("would move ≈")
        assert f"matching 'bot = {BOT}'" in plan[1]["summary"]
        assert acted(hook, key) == {"runbook move": 1, "escalate": 1}  # the page only
        assert depth(ops_stack, dst) == 0 and consumers(ops_stack) == 2
        [page] = pages(am, "LikkerRunbookAwaitsApproval", row)
        assert f"likkerctl webhook approve {run} before" in page["annotations"]["summary"]
        assert "likkerctl_runbooks_pending 1.0" in requests.get(f"{hook.url}/metrics").text
        assert requests.get(f"{hook.url}/healthz").json()["pending"] == [run]
        listed = cli("webhook", "log", "--pending", env={"LIKKER_AUDIT_DB_URL": hook.audit_url})
        assert f"(webhook approve {run})" in listed.stdout, listed.stdout

        env = {"LIKKER_AUDIT_DB_URL": hook.audit_url}
        done = cli("webhook", "approve", str(run), "--by", "ann", "--yes", env=env)
        assert done.rc == 0, done.stderr
        assert f"run {run} approved by ann" in done.stdout
        assert "2. shovel: ok: would move" in done.stderr  # the plan, shown before the question
        again = cli("webhook", "approve", str(run), "--by", "bob", "--yes", env=env)
        assert again.rc == 0 and "already approved by ann" in again.stdout, again.stderr

        finished = settled(hook, run)
        assert finished["outcome"] == "ok", finished["detail"]
        assert finished["detail"]["approved_by"].startswith("ann (OS user ")
        assert "likkerctl_runbooks_pending 0.0" in requests.get(f"{hook.url}/metrics").text
        # Every step once, for real, with the approver on its row.
        assert acted(hook, key) == {
            "runbook move": 2,  # the page of the pending run, then the run
            "escalate": 1,
            "takers pause": 1,
            "shovel": 1,
            "takers resume": 1,
            "webhook approve": 2,  # the decision and the second, no-op, approval
        }
        for e in hook.audit(key):
            if not e["dry_run"] and e["command"] in ("takers pause", "shovel", "takers resume"):
                assert e["result"] == "ok", e
                assert e["counts"]["runbook"]["mode"] == "approve"
                assert e["counts"]["runbook"]["approved_by"].startswith("ann (OS user ")
        decisions = [e for e in hook.audit(key) if e["command"] == "webhook approve"]
        assert {e["params"]["by"] for e in decisions} == {"ann", "bob"}

        # Bad input: an unknown run, and one that never waited for approval (the page the
        # webhook received back from Alertmanager, which has no runbook).
        unknown = cli("webhook", "approve", "999999", "--yes", env=env)
        assert unknown.rc == 5 and "no run 999999 in the webhook's ledger" in unknown.stderr
        echo = wait_for(
            lambda: next(
                (r for r in hook.ledger() if r["alertname"] == "LikkerRunbookAwaitsApproval"), None
            ),
            30,
            0.5,
        )
        assert echo, hook.ledger()
        finished_run = cli("webhook", "approve", str(echo["id"]), "--yes", env=env)
        assert finished_run.rc == 6, finished_run.stderr
        assert f"run {echo['id']} is not waiting for approval" in finished_run.stderr
    assert labels["queue"] == src
    # Exactly the bot's messages moved; every other one is still in the source.
    in_dst, in_src = (
        Counter(drain_ids(cli.stack.settings.amqp_url, dst)),
        Counter(drain_ids(cli.stack.settings.amqp_url, src)),
    )
    bot = {i for i, b in filled.items() if b == BOT}
    assert set(in_dst) == bot and set(in_src) == set(filled) - bot
    assert consumers(ops_stack) == 2  # resumed


def test_a_decision_taken_while_the_webhook_is_down_is_acted_on_when_it_starts(
    cli: Cli,
    ops_stack: RunningStack,
    queues: tuple[str, str],
    am: Alertmanager,
    filled: dict[str, int | None],
    tmp_path: Path,
) -> None:
    src, dst = queues
    with approve_hook(cli, tmp_path, am, timeout=120) as hook:
        fire(am, queues)
        run = pending_run(hook)["id"]
    # The webhook is stopped; the decision goes to the database all the same.
    env = {"LIKKER_AUDIT_DB_URL": hook.audit_url}
    done = cli("webhook", "approve", str(run), "--by", "ann", "--yes", env=env)
    assert done.rc == 0, done.stderr
    assert next(r for r in hook.ledger() if r["id"] == run)["outcome"] == "pending"
    assert drain_ids(cli.stack.settings.amqp_url, dst) == []
    with approve_hook(cli, tmp_path, am, timeout=120) as again:
        finished = settled(again, run)
        assert finished["outcome"] == "ok", finished["detail"]
        assert f"waiting again for decisions on run(s) {run}" in again.log.read_text()
    in_dst = set(drain_ids(cli.stack.settings.amqp_url, dst))
    in_src = set(drain_ids(cli.stack.settings.amqp_url, src))
    bot = {i for i, b in filled.items() if b == BOT}
    assert in_dst == bot and in_src == set(filled) - bot


def refused(
    cli: Cli,
    ops_stack: RunningStack,
    queues: tuple[str, str],
    am: Alertmanager,
    filled: dict[str, int | None],
    tmp_path: Path,
    timeout: float,
    decide: list[str] | None,
) -> tuple[dict[str, Any], Webhook]:
    with approve_hook(cli, tmp_path, am, timeout=timeout) as hook:
        fire(am, queues)
        row = pending_run(hook)
        run = row["id"]
        env = {"LIKKER_AUDIT_DB_URL": hook.audit_url}
        if decide:
            done = cli("webhook", *decide, str(run), "--yes", env=env)
            assert done.rc == 0, done.stderr
        finished = settled(hook, run)
        # Too late, or decided already: exit 6 with the reason.
        late = cli("webhook", "approve", str(run), "--yes", env=env)
        assert late.rc == 6, late.stderr
        finished["late"] = late.stderr
        assert acted(hook, row["alert"]) <= Counter(
            {"runbook move": 2, "escalate": 2, "webhook reject": 1, "webhook approve": 1}
        ), acted(hook, row["alert"])
        assert not {"takers pause", "shovel", "takers resume"} & set(acted(hook, row["alert"]))
    # Nothing moved: every message is still in the source, none in the destination.
    assert drain_ids(cli.stack.settings.amqp_url, queues[1]) == []
    assert Counter(drain_ids(cli.stack.settings.amqp_url, queues[0])) == Counter(set(filled))
    assert consumers(ops_stack) == 2
    return finished, hook


def test_a_rejected_run_changes_nothing_and_escalates(
    cli: Cli,
    ops_stack: RunningStack,
    queues: tuple[str, str],
    am: Alertmanager,
    filled: dict[str, int | None],
    tmp_path: Path,
) -> None:
    decision = ["reject", "--by", "bob", "--reason", "the bot is ours"]
    row, _ = refused(cli, ops_stack, queues, am, filled, tmp_path, 120, decision)
    assert row["outcome"] == "rejected"
    assert f"run {row['id']} was already rejected by bob" in row["late"]
    [page] = pages(am, "LikkerRunbookEscalated", row)
    assert (
        f"run {row['id']} was rejected by bob (OS user " in page["annotations"]["summary"]
        and "the bot is ours; nothing was done" in page["annotations"]["summary"]
    )


def test_no_decision_in_time_changes_nothing_and_escalates(
    cli: Cli,
    ops_stack: RunningStack,
    queues: tuple[str, str],
    am: Alertmanager,
    filled: dict[str, int | None],
    tmp_path: Path,
) -> None:
    row, _ = refused(cli, ops_stack, queues, am, filled, tmp_path, 3, None)
    assert row["outcome"] == "expired"
    assert f"run {row['id']} expired at" in row["late"] and "nothing was done" in row["late"]
    [page] = pages(am, "LikkerRunbookEscalated", row)
    assert "got no decision within approve_timeout_s=3s" in page["annotations"]["summary"]


def test_approve_mode_without_a_timeout_is_refused_at_load(cli: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "rb.toml"
    bad.write_text(APPROVE.format(timeout=1, bot=BOT).replace("approve_timeout_s = 1\n", ""))
    run = cli("webhook", "check", "--runbooks", str(bad))
    assert run.rc == 2
    assert f'{bad}: runbooks.move: mode = "approve" needs approve_timeout_s' in run.stderr
    ok = tmp_path / "ok.toml"
    ok.write_text(bad.read_text().replace('mode = "approve"\n', ""))
    serve = cli("webhook", "serve", "--port", "1", "--mode", "approve", "--runbooks", str(ok))
    assert serve.rc == 2 and "runbooks.move: --mode approve needs approve_timeout_s" in serve.stderr
