"""Approve mode and crash recovery, decided on data: who is told a run waits, why a refused
run escalates, and where a run a crash interrupted stopped. Pure.

A runbook without a `when = "pending"` step is told about with the built-in escalate step
(alertname LikkerRunbookAwaitsApproval); one without a `when = "escalated"` step escalates
with the built-in one: nobody waits on a run nobody was told of.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from likkerctl.runbooks import spec
from likkerctl.runbooks.context import Step
from likkerctl.runbooks.steps import AWAITS_APPROVAL

AWAITS_SUMMARY = (
    "Runbook {runbook} for {alertname} awaits approval: likkerctl webhook approve {run} "
    "(or reject) before {expires_at}"
)


def with_notices(runbook: spec.Runbook, steps: Mapping[str, Step]) -> spec.Runbook:
    """`runbook` with the built-in escalate step as its pending notice and as its escalation
    where it has none of its own."""
    extra: list[spec.StepSpec] = []
    where = f"runbooks.{runbook.name} (built-in notice)"
    if not any(s.when == "pending" for s in runbook.steps):
        raw = {"step": "escalate", "when": "pending", "alertname": AWAITS_APPROVAL}
        extra.append(spec.step_spec(where, raw | {"summary": AWAITS_SUMMARY}, steps))
    if not any(s.when == "escalated" for s in runbook.steps):
        extra.append(spec.step_spec(where, {"step": "escalate", "when": "escalated"}, steps))
    return replace(runbook, steps=runbook.steps + tuple(extra)) if extra else runbook


def stand_in(name: str, target: str) -> spec.Runbook:
    """A runbook no longer in the file: nothing of it can run but the built-in notices."""
    return spec.Runbook(name, "(no longer in the runbook file)", (), target, ())


def approved_by(decided_by: str | None, os_user: str | None) -> str:
    """How the approver is named on every step's audit row: the name, and the OS user."""
    if decided_by and os_user and decided_by != os_user:
        return f"{decided_by} (OS user {os_user})"
    return decided_by or os_user or "unknown"


def refusal(run_id: int, approval: Mapping[str, Any]) -> str:
    """Why a run that was not approved escalates (the `{escalation}` of its page)."""
    if approval["decision"] == "rejected":
        why = f": {approval['reason']}" if approval.get("reason") else ""
        who = approved_by(approval.get("decided_by"), approval.get("os_user"))
        return f"run {run_id} was rejected by {who}{why}; nothing was done"
    return (
        f"run {run_id} got no decision within approve_timeout_s={approval['timeout_s']:g}s; "
        "nothing was done"
    )


def approved_actors(plan: Mapping[str, Any]) -> list[str] | None:
    """The actors the approved plan would act on (None: the plan chose none by sampling)."""
    found = plan.get("state", {}).get("offenders")
    return None if found is None else [str(o["actor"]) for o in found]


@dataclass(frozen=True)
class Stopped:
    """Where an interrupted run stopped, from its last checkpoint."""

    phase: str  # queued or plan (nothing was done) | run
    start: int  # the first step not known to have finished (its `always` steps run from here)
    last_finished: dict[str, Any] | None  # that step's report
    in_progress: int | None  # the step it was in when it died

    def describe(self, runbook: spec.Runbook) -> str:
        def name(index: int) -> str:
            known = index < len(runbook.steps)
            return f"step {index + 1} ({runbook.steps[index].step if known else '?'})"

        if self.phase == "queued":
            return "before it started; nothing was done"
        if self.phase == "plan":
            return "while planning (dry runs only); nothing was done"
        done = self.last_finished
        last = (
            f"its last finished step was {name(done['index'])}: {done['status']}"
            if done
            else "no step had finished"
        )
        if self.in_progress is not None:
            last += f"; {name(self.in_progress)} did not finish"
        return last


def stopped_at(checkpoint: Mapping[str, Any]) -> Stopped:
    """Where a run stopped, from the checkpoint the webhook keeps in its ledger row."""
    phase = str(checkpoint.get("phase", "run"))
    done = [d for d in checkpoint.get("done", []) if d.get("status") != "skipped"]
    current = checkpoint.get("current")
    last = done[-1] if done else None
    if current is not None:
        start = int(current)
    elif checkpoint.get("done"):
        start = int(checkpoint["done"][-1]["index"]) + 1
    else:
        start = 0
    return Stopped(phase, start, last, None if current is None else int(current))


def interruption(run_id: int, runbook: spec.Runbook, stopped: Stopped) -> str:
    """The `{escalation}` of an interrupted run's page: the run, and where it stopped."""
    return f"run {run_id} was interrupted (the webhook died): {stopped.describe(runbook)}"
