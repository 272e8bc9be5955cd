"""What the webhook does with each alert: record it, and run its runbook in the chosen mode.

- observe: every step as its dry run; enforce: every step for real;
- approve: plan every step (its dry run), record a pending run, tell a human (the runbook's
  `pending` steps), and wait for `likkerctl webhook approve|reject RUN` (or the dashboard):
  the decision comes through the database, polled every second. Approved, the run executes
  (each step plans again as it acts: the world may have moved since); rejected, or no
  decision within the runbook's `approve_timeout_s`, nothing is done and it escalates.

One run per target at a time (a pending run holds its target), at most `max_runs_per_hour`.
While a run runs, its ledger row is its checkpoint (webhook.ledger), for webhook.recovery.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from likkerctl.core.profile import Profile
from likkerctl.core.store import approvals
from likkerctl.runbooks import approval as approval_rules
from likkerctl.runbooks import engine
from likkerctl.runbooks.context import AlertInfo, Mode, RunContext, Step, render
from likkerctl.runbooks.spec import Runbook, RunbookSet
from likkerctl.webhook import ledger as ledger_mod
from likkerctl.webhook.limits import RateLimiter, TargetLocks
from likkerctl.webhook.metrics import Metrics
from likkerctl.webhook.payload import Notification

log = logging.getLogger("likkerctl.webhook")

POLL_S = 1.0  # how often a pending run's decision is looked for
# Alerts of one group within this long of its run are one incident (the stack's
# Alertmanager repeats a notification after an hour: repeat_interval).
INCIDENT_WINDOW = timedelta(hours=1)


def alert_json(info: AlertInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "key": info.key,
        "fingerprint": info.fingerprint,
        "labels": dict(info.labels),
        "annotations": dict(info.annotations),
    }


def alert_info(data: dict[str, Any]) -> AlertInfo:
    return AlertInfo(
        data["name"], data["key"], data["fingerprint"], data["labels"], data["annotations"]
    )


class Tracker:
    """A run's checkpoint in its ledger row: the step in progress, those finished, its state."""

    def __init__(
        self, ledger: ledger_mod.Ledger, row_id: int, base: dict[str, Any], ctx: RunContext
    ) -> None:
        self.ledger = ledger
        self.row_id = row_id
        self.base = base
        self.ctx = ctx
        self.done: list[dict[str, Any]] = []
        self.current: int | None = None

    def on_step(self, index: int, report: engine.StepReport | None) -> None:
        if report is None:
            self.current = index
        else:
            self.done.append(report.as_json())
            self.current = None
        self.save()

    def save(self) -> None:
        state = json.loads(json.dumps(self.ctx.state, default=str))
        detail = {**self.base, "state": state, "done": self.done, "current": self.current}
        self.ledger.finish(self.row_id, ledger_mod.RUNNING, detail)


@dataclass
class Waiting:
    """A planned run this process waits on."""

    run_id: int
    info: AlertInfo
    runbook: Runbook
    target: str
    received: datetime


class Remediator:
    """Records alerts and runs their runbooks, one per target at a time, rate-limited."""

    def __init__(
        self,
        profile: Profile,
        runbooks: RunbookSet,
        steps: dict[str, Step],
        mode: Mode,
        metrics: Metrics,
        workers: int = 4,
        poll_s: float = POLL_S,
    ) -> None:
        self.profile = profile
        self.runbooks = runbooks
        self.steps = steps
        self.mode = mode
        self.metrics = metrics
        self.ledger = ledger_mod.Ledger(profile.audit_url)
        self.locks = TargetLocks()
        self.limiter = RateLimiter(runbooks.max_runs_per_hour, 3600.0)
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="runbook")
        self.owner = ledger_mod.this_process()
        self.poll_s = poll_s
        self.waiting: dict[int, Waiting] = {}
        self._waiting_lock = threading.Lock()
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="approvals", daemon=True)

    # -- receiving ---------------------------------------------------------------------
    def receive(self, note: Notification) -> list[dict[str, Any]]:
        """Record each alert of `note`; queue the runbooks of new firings. Blocking (DB)."""
        answers = []
        now = datetime.now(UTC)
        for alert in note.alerts:
            runbook = (
                self.runbooks.match(alert.name, alert.annotations)
                if alert.status == "firing"
                else None
            )
            if alert.status == "resolved":
                action = "recorded"
            else:
                action = ledger_mod.QUEUED if runbook else "no runbook"
            info = AlertInfo(
                alert.name, alert.key, alert.fingerprint, alert.labels, alert.annotations
            )
            detail: dict[str, Any] | None = (
                {"owner": self.owner, "alert": alert_json(info)} if runbook else None
            )
            # One alert per node (the disk alert on a cluster), one incident: one run.
            incident = (
                self.ledger.open_incident(
                    note.group_key, runbook.name, dict(alert.labels), now - INCIDENT_WINDOW
                )
                if runbook is not None
                else None
            )
            if incident is not None:
                action = ledger_mod.SAME_INCIDENT
                detail = {"incident_run": incident, "alert": alert_json(info)}
            row_id = self.ledger.claim(
                alert,
                note.group_key,
                runbook.name if runbook else None,
                self.mode if runbook else None,
                action,
                now,
                detail,
            )
            if row_id is None:
                action = "duplicate"
            elif runbook is not None and incident is None:
                self.pool.submit(self._run, row_id, info, runbook, now)
            self.metrics.alerts.labels(alert.status, action).inc()
            log.info("alert %s %s (%s): %s", alert.name, alert.status, alert.key, action)
            answers.append(
                {
                    "alert": alert.key,
                    "alertname": alert.name,
                    "status": alert.status,
                    "runbook": runbook.name if runbook else None,
                    "action": action,
                    "run": row_id,
                }
            )
        return answers

    def _run(self, row_id: int, info: AlertInfo, runbook: Runbook, received: datetime) -> None:
        try:
            self._run_locked(row_id, info, runbook, received)
        except Exception as exc:  # never lose the worker thread, always close the row
            log.exception("runbook %s for %s failed", runbook.name, info.key)
            self.ledger.finish(row_id, "failed", {"error": f"{type(exc).__name__}: {exc}"})
            self.metrics.runs.labels(runbook.name, "failed").inc()

    def context(
        self, row_id: int, info: AlertInfo, runbook: Runbook, mode: str, **kw: Any
    ) -> RunContext:
        return RunContext(
            self.profile,
            mode,  # type: ignore[arg-type]
            runbook.name,
            info,
            log=lambda m: log.info("%s", m),
            run_id=row_id,
            **kw,
        )

    def _run_locked(
        self, row_id: int, info: AlertInfo, runbook: Runbook, received: datetime
    ) -> None:
        ctx = self.context(row_id, info, runbook, self.mode)
        target = render(runbook.target, ctx.template_vars())
        holder = self.locks.try_take(target, info.key)
        if holder is not None:
            log.warning("%s: %s is being remediated for %s; not run", info.key, target, holder)
            self.ledger.finish(row_id, "busy", {"target": target, "held_by": holder})
            self.metrics.runs.labels(runbook.name, "busy").inc()
            return
        keep = False  # a pending run keeps its target until it is settled
        try:
            if not self.limiter.try_acquire():
                retry = self.limiter.retry_in()
                log.warning("%s: rate limited (next run allowed in %.0fs)", info.key, retry)
                self.ledger.finish(
                    row_id,
                    "rate limited",
                    {"max_runs_per_hour": self.limiter.limit, "retry_in_s": round(retry)},
                )
                self.metrics.runs.labels(runbook.name, "rate limited").inc()
                return
            if self.mode == "approve":
                keep = self._plan(row_id, info, runbook, target, received)
            else:
                self._execute(row_id, ctx, runbook, target, received)
        finally:
            if not keep:
                self.locks.release(target, info.key)

    def _base(self, info: AlertInfo, target: str, phase: str, **more: Any) -> dict[str, Any]:
        return {
            "target": target,
            "phase": phase,
            "owner": self.owner,
            "alert": alert_json(info),
            **more,
        }

    def _execute(
        self,
        row_id: int,
        ctx: RunContext,
        runbook: Runbook,
        target: str,
        received: datetime,
        **more: Any,
    ) -> engine.RunReport:
        """The whole runbook, step by step, checkpointed; the ledger row closed with it."""
        tracker = Tracker(self.ledger, row_id, self._base(ctx.alert, target, "run", **more), ctx)
        ctx.checkpoint = tracker.save
        tracker.save()
        self.metrics.running.inc()
        try:
            report = engine.run(runbook, ctx, self.steps, on_step=tracker.on_step)
        finally:
            self.metrics.running.dec()
        for s in report.steps:
            self.metrics.steps.labels(s.step, s.status).inc()
        self.metrics.runs.labels(runbook.name, report.outcome).inc()
        self.metrics.seconds.labels(runbook.name).observe(
            (datetime.now(UTC) - received).total_seconds()
        )
        self.ledger.finish(row_id, report.outcome, {"target": target, **more, **report.as_json()})
        return report

    # -- approve mode ------------------------------------------------------------------
    def _plan(
        self, row_id: int, info: AlertInfo, runbook: Runbook, target: str, received: datetime
    ) -> bool:
        """Plan the run and leave it waiting for a decision; False when there is nothing to
        decide (the plan found nothing to do, or needs a human already)."""
        assert runbook.approve_timeout_s is not None  # checked when the file was loaded
        ctx = self.context(row_id, info, runbook, "approve", planning=True)
        tracker = Tracker(self.ledger, row_id, self._base(info, target, "plan"), ctx)
        ctx.checkpoint = tracker.save
        tracker.save()
        plan = engine.run(runbook, ctx, self.steps, on_step=tracker.on_step)
        planned = {**plan.as_json(), "state": json.loads(json.dumps(ctx.state, default=str))}
        if plan.outcome == "stopped":  # e.g. nobody to act on: nothing to approve
            self.ledger.finish(row_id, "stopped", {"target": target, "plan": planned})
            self.metrics.runs.labels(runbook.name, "stopped").inc()
            return False
        if plan.needs_a_human:  # the plan itself escalated: page now, ask nothing
            page = self.context(row_id, info, runbook, "approve")
            report = engine.run(
                approval_rules.with_notices(runbook, self.steps),
                page,
                self.steps,
                phase="refused",
                escalation=f"the plan of run {row_id}: {ctx.state.get('escalation')}",
            )
            self.ledger.finish(
                row_id, plan.outcome, {"target": target, "plan": planned, **report.as_json()}
            )
            self.metrics.runs.labels(runbook.name, plan.outcome).inc()
            return False
        pending = approvals.request(
            self.profile.audit_url,
            run_id=row_id,
            alert=alert_json(info),
            runbook=runbook.name,
            target=target,
            timeout_s=runbook.approve_timeout_s,
            plan=planned,
        )
        self.ledger.finish(
            row_id,
            ledger_mod.PENDING,
            self._base(
                info,
                target,
                "pending",
                plan=planned,
                expires_at=pending["expires_at"],
                approve=f"likkerctl webhook approve {row_id}",
            ),
        )
        self.metrics.pending.inc()
        log.info(
            "%s: run %d planned, waiting for approval until %s",
            info.key,
            row_id,
            pending["expires_at"],
        )
        notice = self.context(row_id, info, runbook, "approve")
        notice.state["expires_at"] = pending["expires_at"]
        engine.run(
            approval_rules.with_notices(runbook, self.steps), notice, self.steps, phase="pending"
        )
        with self._waiting_lock:
            self.waiting[row_id] = Waiting(row_id, info, runbook, target, received)
        return True

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_s):
            with self._waiting_lock:
                waiting = list(self.waiting.values())
            for w in waiting:
                try:
                    self._look(w)
                except Exception:  # the database hiccups: look again next time
                    log.exception("run %d: could not read its decision", w.run_id)

    def _look(self, w: Waiting) -> None:
        url = self.profile.audit_url
        approval, _ = approvals.get(url, w.run_id)
        if approval is None:
            return
        if approval["decision"] is None:
            if time.time() < approval["deadline"] or not approvals.expire(url, w.run_id):
                return
            approval, _ = approvals.get(url, w.run_id)
            assert approval is not None
        with self._waiting_lock:
            if self.waiting.pop(w.run_id, None) is None:
                return  # settled already
        self.metrics.pending.dec()
        log.info("run %d: %s by %s", w.run_id, approval["decision"], approval["decided_by"])
        self.pool.submit(self._settle, w, approval)

    def _settle(self, w: Waiting, approval: dict[str, Any]) -> None:
        try:
            if approval["decision"] == "approved":
                who = approval_rules.approved_by(approval["decided_by"], approval["os_user"])
                ctx = self.context(w.run_id, w.info, w.runbook, "approve", decided_by=who)
                actors = approval_rules.approved_actors(approval["plan"])
                if actors is not None:
                    ctx.state["approved_actors"] = actors
                self._execute(w.run_id, ctx, w.runbook, w.target, w.received, approved_by=who)
                return
            ctx = self.context(w.run_id, w.info, w.runbook, "approve")
            report = engine.run(
                approval_rules.with_notices(w.runbook, self.steps),
                ctx,
                self.steps,
                phase="refused",
                escalation=approval_rules.refusal(w.run_id, approval),
            )
            self.metrics.runs.labels(w.runbook.name, approval["decision"]).inc()
            self.ledger.finish(
                w.run_id, approval["decision"], {"target": w.target, **report.as_json()}
            )
        except Exception as exc:  # always close the row
            log.exception("run %d failed", w.run_id)
            self.ledger.finish(w.run_id, "failed", {"error": f"{type(exc).__name__}: {exc}"})
        finally:
            self.locks.release(w.target, w.info.key)

    def adopt(self) -> list[int]:
        """At start: wait again on the runs left pending when the webhook stopped (their
        decision may have come meanwhile)."""
        adopted = []
        for a in approvals.unsettled(self.profile.audit_url):
            row = self.ledger.get(a["run"])
            if row is None or ledger_mod.owner_alive(row["detail"].get("owner")):
                continue  # another webhook on this database waits on it
            runbook = self.runbooks.runbooks.get(a["runbook"]) or approval_rules.stand_in(
                a["runbook"], a["target"]
            )
            info = alert_info(a["alert_info"])
            holder = self.locks.try_take(a["target"], info.key)
            if holder is not None and holder != info.key:
                log.warning("run %d: %s is held by %s", a["run"], a["target"], holder)
            self.ledger.finish(a["run"], ledger_mod.PENDING, {**row["detail"], "owner": self.owner})
            received = datetime.fromisoformat(row["received_at"])
            with self._waiting_lock:
                self.waiting[a["run"]] = Waiting(a["run"], info, runbook, a["target"], received)
            self.metrics.pending.inc()
            adopted.append(a["run"])
        return adopted

    def start(self) -> None:
        self._watcher.start()

    def shutdown(self) -> None:
        self._stop.set()
        if self._watcher.is_alive():
            self._watcher.join(timeout=5)
        self.pool.shutdown(wait=True)
