"""Runs the webhook planned in approve mode, waiting for a human, and the decisions on them.

The decision is durable and shared between processes: `likkerctl webhook approve|reject` and
the dashboard write it here, in the approver's own process; the webhook polls it (and finds
it again after a restart). It is taken by a conditional update, so a second approval, or one
racing the deadline, changes nothing.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from likkerctl.core.errors import Conflict, NotFound
from likkerctl.core.store.engine import engine_for
from likkerctl.core.store.models import ReceivedAlert, RunApproval

Decision = Literal["approved", "rejected", "expired"]
# The ledger's outcome of a run waiting for a decision (webhook_alerts.outcome).
PENDING = "pending"
VERBS: dict[str, Decision] = {"approve": "approved", "reject": "rejected"}


def request(
    url: str,
    *,
    run_id: int,
    alert: dict[str, Any],
    runbook: str,
    target: str,
    timeout_s: float,
    plan: dict[str, Any],
    now: float | None = None,
) -> dict[str, Any]:
    """Record that run `run_id` waits for a decision until `timeout_s` from now."""
    at = time.time() if now is None else now
    row = RunApproval(
        run_id=run_id,
        alert_key=alert["key"],
        alertname=alert["name"],
        runbook=runbook,
        target=target,
        requested_at=datetime.fromtimestamp(at, UTC),
        deadline=at + timeout_s,
        timeout_s=timeout_s,
        alert=alert,
        plan=plan,
    )
    with Session(engine_for(url)) as session, session.begin():
        session.add(row)
        session.flush()
        return row.as_json()


def _when(iso: str | None) -> str:
    return (iso or "?")[:19].replace("T", " ")


def check(
    run_id: int,
    approval: dict[str, Any] | None,
    ledger: dict[str, Any] | None,
    verb: str,
    now: float,
) -> str | None:
    """Whether `verb` (approve | reject) may be decided on run `run_id` now. Pure.

    None: it may. "noop": it was decided so already (a second approval). Raises NotFound
    for an unknown run, Conflict (with the reason) for one that is finished, decided the
    other way, or expired.
    """
    if approval is None:
        if ledger is None:
            raise NotFound(
                f"no run {run_id} in the webhook's ledger (`likkerctl webhook log` lists them)",
                what="run",
            )
        raise Conflict(
            f"run {run_id} is not waiting for approval: it ran in {ledger.get('mode') or 'no'} "
            f"mode, outcome {ledger.get('outcome')}"
        )
    decision = approval["decision"]
    if decision is None and approval["deadline"] <= now:
        decision = "expired"
    if decision == "expired":
        raise Conflict(
            f"run {run_id} expired at {_when(approval['expires_at'])} UTC: no decision within "
            f"approve_timeout_s={approval['timeout_s']:g}, so nothing was done and it escalated"
        )
    if decision is None:
        if ledger is not None and ledger.get("outcome") != PENDING:
            raise Conflict(
                f"run {run_id} is not waiting for approval any more: {ledger.get('outcome')}"
            )
        return None
    by = f"{approval['decided_by']} at {_when(approval['decided_at'])} UTC"
    if decision == VERBS[verb]:
        return "noop"
    raise Conflict(f"run {run_id} was already {decision} by {by}")


def get(url: str, run_id: int) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(the approval, the ledger row) of run `run_id`; None for what does not exist."""
    with Session(engine_for(url)) as session:
        approval = session.scalars(select(RunApproval).where(RunApproval.run_id == run_id)).first()
        ledger = session.get(ReceivedAlert, run_id)
        return (
            approval.as_json() if approval else None,
            ledger.as_json() if ledger else None,
        )


def decide(
    url: str,
    run_id: int,
    verb: str,
    *,
    by: str,
    os_user: str,
    reason: str | None = None,
    now: float | None = None,
) -> tuple[dict[str, Any], bool]:
    """Approve or reject run `run_id`: (the approval after, whether this call decided it).

    False means it was decided so before (a no-op); a run that cannot be decided raises as
    `check` says.
    """
    at = time.time() if now is None else now
    approval, ledger = get(url, run_id)
    if check(run_id, approval, ledger, verb, at) == "noop":
        assert approval is not None
        return approval, False
    with Session(engine_for(url)) as session, session.begin():
        done = session.execute(
            update(RunApproval)
            .where(
                RunApproval.run_id == run_id,
                RunApproval.decision.is_(None),
                RunApproval.deadline > at,
            )
            .values(
                decision=VERBS[verb],
                decided_at=datetime.fromtimestamp(at, UTC),
                decided_by=by,
                os_user=os_user,
                reason=reason,
            )
        )
        decided = done.rowcount == 1  # type: ignore[attr-defined]
    approval, ledger = get(url, run_id)
    if not decided:
        check(run_id, approval, ledger, verb, at)  # raises, unless it was a second approval
    assert approval is not None
    return approval, decided


def expire(url: str, run_id: int, now: float | None = None) -> bool:
    """The webhook's side of the deadline: True when this call marked the run expired (no
    decision came in time); False when a decision won the race."""
    at = time.time() if now is None else now
    with Session(engine_for(url)) as session, session.begin():
        done = session.execute(
            update(RunApproval)
            .where(
                RunApproval.run_id == run_id,
                RunApproval.decision.is_(None),
                RunApproval.deadline <= at,
            )
            .values(
                decision="expired",
                decided_at=datetime.fromtimestamp(at, UTC),
                decided_by="webhook",
                reason="no decision in time",
            )
        )
        return bool(done.rowcount == 1)  # type: ignore[attr-defined]


def waiting(url: str, now: float | None = None) -> list[dict[str, Any]]:
    """Runs waiting for a decision now (undecided, before their deadline), oldest first:
    what the dashboard and `webhook log --pending` show."""
    at = time.time() if now is None else now
    with Session(engine_for(url)) as session:
        query = (
            select(RunApproval)
            .join(ReceivedAlert, ReceivedAlert.id == RunApproval.run_id)
            .where(
                RunApproval.decision.is_(None),
                RunApproval.deadline > at,
                ReceivedAlert.outcome == PENDING,
            )
            .order_by(RunApproval.run_id)
        )
        return [a.as_json() for a in session.scalars(query)]


def unsettled(url: str) -> list[dict[str, Any]]:
    """Runs whose ledger row still says pending, decided or not: the webhook's to act on
    (when it starts again, those it was waiting for when it stopped)."""
    with Session(engine_for(url)) as session:
        query = (
            select(RunApproval)
            .join(ReceivedAlert, ReceivedAlert.id == RunApproval.run_id)
            .where(ReceivedAlert.outcome == PENDING)
            .order_by(RunApproval.run_id)
        )
        return [a.as_json() for a in session.scalars(query)]


def of_runs(url: str, run_ids: list[int]) -> dict[int, dict[str, Any]]:
    """The approvals of these runs, by run id (for `webhook log`)."""
    if not run_ids:
        return {}
    with Session(engine_for(url)) as session:
        rows = session.scalars(select(RunApproval).where(RunApproval.run_id.in_(run_ids)))
        return {r.run_id: r.as_json() for r in rows}
