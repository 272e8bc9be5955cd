"""Approve mode and crash recovery, the logic: runbook files, the engine's phases, where an
interrupted run stopped, and the decisions in the database (SQLite in a temp dir)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from likkerctl.cli.errors import exit_code
from likkerctl.core import operations
from likkerctl.core.errors import Conflict, NotFound
from likkerctl.core.profile import Profile
from likkerctl.core.store import approvals, audit
from likkerctl.runbooks import approval as rules
from likkerctl.runbooks import engine, offenders, spec
from likkerctl.runbooks.context import AlertInfo, Param, RunContext, StepResult
from likkerctl.runbooks.steps import builtin
from likkerctl.webhook.ledger import PENDING, Ledger
from likkerctl.webhook.payload import parse
from tests.alertmanager_payload import alert, body

STEPS = builtin()


def parse_book(text: str) -> spec.RunbookSet:
    return spec.parse(text, "rb.toml", STEPS)


ONE = "[runbooks.x]\nalerts = ['A']\n[[runbooks.x.steps]]\nstep = 'takers pause'\n"


# -- runbook files --------------------------------------------------------------------------
def test_approve_mode_without_a_timeout_is_refused_naming_the_runbook() -> None:
    with pytest.raises(spec.RunbookError) as exc:
        parse_book("mode = 'approve'\n" + ONE)
    assert exit_code(exc.value) == 2
    place = 'rb.toml: runbooks.x: mode = "approve" needs approve_timeout_s'
    assert str(exc.value).startswith(place)


def test_the_files_timeout_covers_every_runbook_and_a_runbooks_own_wins() -> None:
    book = parse_book(
        "mode = 'approve'\napprove_timeout_s = 600\n"
        + ONE
        + "[runbooks.y]\nalerts = ['B']\napprove_timeout_s = 30\n"
        "[[runbooks.y.steps]]\nstep = 'takers resume'\n"
    )
    assert book.runbooks["x"].approve_timeout_s == 600.0
    assert book.runbooks["y"].approve_timeout_s == 30.0
    assert book.as_json()["runbooks"]["y"]["approve_timeout_s"] == 30.0


@pytest.mark.parametrize("value", ["0", "-5", "'soon'", "true"])
def test_a_bad_timeout_is_named(value: str) -> None:
    with pytest.raises(spec.RunbookError, match=r"rb.toml: runbooks.x: approve_timeout_s must be"):
        parse_book(ONE.replace("alerts", f"approve_timeout_s = {value}\nalerts"))


def test_approve_mode_chosen_by_flag_needs_the_timeouts_too() -> None:
    book = parse_book(ONE)  # observe: fine without
    with pytest.raises(spec.RunbookError, match=r"runbooks\.x: --mode approve needs"):
        book.require_approve_timeouts("--mode approve")
    spec.load(None, STEPS).require_approve_timeouts("--mode approve")  # the built-in has one


# -- the engine's phases ------------------------------------------------------------------
class Scripted:
    def __init__(self, name: str, status: str = "ok") -> None:
        self.name = name
        self.description = ""
        self.params: dict[str, Param] = {"note": Param(str, "")}
        self.status = status
        self.seen: list[tuple[bool, dict[str, Any]]] = []

    def run(self, ctx: RunContext, params: dict[str, Any]) -> StepResult:
        self.seen.append((ctx.dry_run, params))
        return StepResult(self.status, f"{self.name} said {self.status}")  # type: ignore[arg-type]


def book_of(steps: list[tuple[Scripted, str]]) -> tuple[spec.Runbook, dict[str, Any]]:
    registry = {s.name: s for s, _ in steps}
    text = "[runbooks.t]\nalerts = ['A']\napprove_timeout_s = 60\n" + "".join(
        f"[[runbooks.t.steps]]\nstep = '{s.name}'\nwhen = '{when}'\nnote = '{{escalation}}'\n"
        for s, when in steps
    )
    return spec.parse(text, "t.toml", registry).runbooks["t"], registry


def ctx_for(tmp_path: Path, mode: str = "approve", **kw: Any) -> RunContext:
    profile = Profile(state_dir=str(tmp_path), audit_db_url=f"sqlite:///{tmp_path}/a.db")
    info = AlertInfo("A", "f:t", "f", {"alertname": "A"}, {})
    return RunContext(profile, mode, "t", info, **kw)  # type: ignore[arg-type]


def test_a_plan_is_every_step_as_its_dry_run_and_tells_nobody(tmp_path: Path) -> None:
    act, tidy, notice, page = Scripted("act"), Scripted("tidy"), Scripted("notice"), Scripted("p")
    runbook, registry = book_of(
        [(act, "ok"), (tidy, "always"), (notice, "pending"), (page, "escalated")]
    )
    ctx = ctx_for(tmp_path, planning=True)
    seen: list[tuple[int, str | None]] = []
    report = engine.run(
        runbook, ctx, registry, on_step=lambda i, r: seen.append((i, r and r.status))
    )
    assert report.outcome == "planned"
    assert [s.status for s in report.steps] == ["ok", "ok", "skipped", "skipped"]
    assert act.seen == [(True, {"note": ""})] and tidy.seen[0][0] is True
    assert notice.seen == [] and page.seen == []
    assert seen == [(0, None), (0, "ok"), (1, None), (1, "ok"), (2, "skipped"), (3, "skipped")]
    row = audit.entries(ctx.profile.audit_url, 1)[0]
    assert row["command"] == "runbook t" and row["dry_run"] is True
    assert row["params"]["phase"] == "plan"
    assert row["counts"]["runbook"] == {"name": "t", "mode": "approve", "phase": "plan"}


def test_the_pending_phase_runs_only_the_notice_for_real(tmp_path: Path) -> None:
    act, notice = Scripted("act"), Scripted("notice")
    runbook, registry = book_of([(act, "ok"), (notice, "pending")])
    report = engine.run(runbook, ctx_for(tmp_path, run_id=7), registry, phase="pending")
    assert [s.step for s in report.steps] == ["notice"]
    assert act.seen == [] and notice.seen == [(False, {"note": ""})]


def test_a_refused_run_runs_only_its_escalation_with_the_reason(tmp_path: Path) -> None:
    act, tidy, page = Scripted("act"), Scripted("tidy"), Scripted("page")
    runbook, registry = book_of([(act, "ok"), (tidy, "always"), (page, "escalated")])
    report = engine.run(
        runbook, ctx_for(tmp_path), registry, phase="refused", escalation="rejected by ann"
    )
    assert report.outcome == "escalated" and [s.step for s in report.steps] == ["page"]
    assert act.seen == [] and tidy.seen == []
    assert page.seen == [(False, {"note": "rejected by ann"})]


def test_recovery_runs_always_steps_from_where_it_stopped_then_escalates(tmp_path: Path) -> None:
    pause, move, resume, check, page = (Scripted(n) for n in ("pause", "move", "resume", "c", "p"))
    runbook, registry = book_of(
        [(pause, "ok"), (move, "ok"), (resume, "always"), (check, "ok"), (page, "escalated")]
    )
    report = engine.run(
        runbook, ctx_for(tmp_path), registry, phase="recover", escalation="died", start=1
    )
    assert [s.step for s in report.steps] == ["resume", "p"]
    assert pause.seen == [] and move.seen == [] and check.seen == []
    assert resume.seen and page.seen == [(False, {"note": "died"})]
    # An `always` step that had finished before the crash is not run again.
    resume.seen.clear()
    engine.run(runbook, ctx_for(tmp_path), registry, phase="recover", escalation="x", start=3)
    assert resume.seen == []


# -- approve mode's rules ------------------------------------------------------------------
def test_a_runbook_without_notices_gets_the_built_in_ones() -> None:
    book = parse_book(ONE)
    with_them = rules.with_notices(book.runbooks["x"], STEPS)
    added = with_them.steps[1:]
    assert [(s.step, s.when) for s in added] == [("escalate", "pending"), ("escalate", "escalated")]
    assert added[0].params["alertname"] == "LikkerRunbookAwaitsApproval"
    assert "{run}" in added[0].params["summary"]
    builtin_disk = spec.load(None, STEPS).runbooks["disk-full"]
    assert rules.with_notices(builtin_disk, STEPS) == builtin_disk  # it has its own


def test_where_an_interrupted_run_stopped_is_named() -> None:
    runbook = spec.load(None, STEPS).runbooks["disk-full"]
    done = [
        {"index": 0, "step": "find-offenders", "status": "ok", "summary": "", "seconds": 1},
        {"index": 1, "step": "bots block", "status": "ok", "summary": "", "seconds": 1},
        {"index": 2, "step": "takers pause", "status": "ok", "summary": "", "seconds": 1},
    ]
    stopped = rules.stopped_at({"phase": "run", "done": done, "current": 3})
    assert stopped.start == 3
    text = rules.interruption(17, runbook, stopped)
    assert text == (
        "run 17 was interrupted (the webhook died): its last finished step was step 3 "
        "(takers pause): ok; step 4 (shovel) did not finish"
    )
    between = rules.stopped_at({"phase": "run", "done": done, "current": None})
    assert between.start == 3 and between.in_progress is None
    planning = rules.stopped_at({"phase": "plan", "done": done[:1], "current": 1})
    assert "while planning (dry runs only); nothing was done" in rules.interruption(
        3, runbook, planning
    )


def test_an_approved_run_acts_on_no_one_the_approver_did_not_see() -> None:
    plan = {"state": {"offenders": [{"actor": "bot:1", "bot": 1}]}}
    assert rules.approved_actors(plan) == ["bot:1"]
    assert rules.approved_actors({"state": {}}) is None
    stats = [offenders.ActorStats("bot:1", 1, 50, 50), offenders.ActorStats("bot:2", 2, 50, 50)]
    narrowed = offenders.within(offenders.Choice(selected=stats), ["bot:1"])
    assert narrowed.bots == [1]
    assert [(s.actor, why) for s, why in narrowed.passed_over] == [
        ("bot:2", "not in the approved plan")
    ]


# -- decisions in the database ---------------------------------------------------------------
@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/likkerctl.db"


def pending_run(url: str, timeout_s: float = 600, now: float | None = None) -> dict[str, Any]:
    a = parse(body(alert("LikkerTest"))).alerts[0]
    ledger = Ledger(url)
    run_id = ledger.claim(a, "g", "x", "approve", "queued", datetime.now(UTC))
    assert run_id is not None
    info = {"name": a.name, "key": a.key, "fingerprint": a.fingerprint, "labels": {}}
    plan = {"steps": [{"index": 0, "step": "takers pause", "status": "ok", "summary": "would"}]}
    made = approvals.request(
        url,
        run_id=run_id,
        alert=info | {"annotations": {}},
        runbook="x",
        target="q",
        timeout_s=timeout_s,
        plan=plan,
        now=now,
    )
    ledger.finish(run_id, PENDING, {})
    return made


def test_approve_once_then_a_second_approval_is_a_no_op(db: str) -> None:
    run = pending_run(db)["run"]
    assert [a["run"] for a in approvals.waiting(db)] == [run]
    first, decided = approvals.decide(db, run, "approve", by="ann", os_user="root")
    assert decided and first["decision"] == "approved" and first["decided_by"] == "ann"
    again, decided = approvals.decide(db, run, "approve", by="bob", os_user="root")
    assert not decided and again["decided_by"] == "ann"
    assert approvals.waiting(db) == []
    with pytest.raises(Conflict, match=f"run {run} was already approved by ann at") as exc:
        approvals.decide(db, run, "reject", by="bob", os_user="root")
    assert exit_code(exc.value) == 6


def test_two_approvers_at_once_one_decision(db: str) -> None:
    run = pending_run(db)["run"]
    results: list[bool] = []
    start = threading.Barrier(4)

    def approve(name: str) -> None:
        start.wait()
        results.append(approvals.decide(db, run, "approve", by=name, os_user="u")[1])

    threads = [threading.Thread(target=approve, args=(f"p{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False, False, False, True]


def test_unknown_finished_and_expired_runs_say_why(db: str) -> None:
    with pytest.raises(NotFound, match="no run 999 in the webhook's ledger") as unknown:
        approvals.decide(db, 999, "approve", by="ann", os_user="root")
    assert exit_code(unknown.value) == 5
    # A run that never waited for approval (enforce mode): finished.
    a = parse(body(alert("LikkerOther"))).alerts[0]
    enforce = Ledger(db).claim(a, "g", "x", "enforce", "ok", datetime.now(UTC))
    assert enforce is not None
    with pytest.raises(Conflict, match=f"run {enforce} is not waiting for approval: it ran in "):
        approvals.decide(db, enforce, "approve", by="ann", os_user="root")
    # Expired: its deadline passed (the webhook marks it; before that, the clock says so).
    late = pending_run(db, timeout_s=5, now=time.time() - 10)["run"]
    with pytest.raises(Conflict, match=f"run {late} expired at .* nothing was done") as exc:
        approvals.decide(db, late, "approve", by="ann", os_user="root")
    assert exit_code(exc.value) == 6
    assert approvals.expire(db, late) and not approvals.expire(db, late)
    with pytest.raises(Conflict, match="expired"):
        approvals.decide(db, late, "reject", by="ann", os_user="root")


def test_the_deadline_loses_to_a_decision_taken_before_it(db: str) -> None:
    run = pending_run(db)["run"]
    approvals.decide(db, run, "reject", by="ann", os_user="root", reason="not now")
    assert not approvals.expire(db, run, now=time.time() + 3600)
    approval, _ = approvals.get(db, run)
    assert approval is not None and approval["decision"] == "rejected"
    assert rules.refusal(run, approval) == (
        f"run {run} was rejected by ann (OS user root): not now; nothing was done"
    )


def test_the_decision_is_audited_under_the_runs_alert_with_who(tmp_path: Path, db: str) -> None:
    made = pending_run(db)
    profile = Profile(state_dir=str(tmp_path), audit_db_url=db)
    op = operations.RunDecision.of(profile, "approve", made["run"], by="ann")
    dry = operations.perform(profile, op, dry_run=True)
    assert dry.result is None and dry.plan["steps"][0]["step"] == "takers pause"
    done = operations.perform(profile, op, dry_run=False)
    assert done.result is not None and done.result["decided_by"] == "ann"
    second = operations.perform(profile, op, dry_run=False)
    assert second.result is not None and second.result["noop"] is True
    rows = audit.entries(db, 10, command="webhook approve")
    assert [r["dry_run"] for r in rows] == [False, False, True]
    assert {r["alert"] for r in rows} == {made["alert"]}
    assert rows[1]["params"] == {"run": made["run"], "by": "ann"}
    assert rows[1]["os_user"] == audit.os_user() and rows[1]["result"] == "ok"


def test_rows_a_dead_process_left_running_are_marked_interrupted(db: str) -> None:
    from sqlalchemy.orm import Session

    from likkerctl.core.store.engine import engine_for
    from likkerctl.core.store.models import AuditEntry

    for _ in range(2):
        with audit.audited(db, profile="p", command="shovel", params={}, dry_run=False, alert="k"):
            pass
    newest = audit.entries(db, 10, alert="k")[0]["id"]
    with Session(engine_for(db)) as session, session.begin():  # as kill -9 leaves a row
        row = session.get(AuditEntry, newest)
        assert row is not None
        row.result = "running"
    assert audit.mark_interrupted(db, "k", "died") == [newest]
    after = audit.entries(db, 10, alert="k")
    assert [(r["result"], r["error"]) for r in after] == [("interrupted", "died"), ("ok", None)]
