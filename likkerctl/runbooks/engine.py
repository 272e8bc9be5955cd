"""Run one runbook for one alert: each step in order, its outcome recorded, never a crash.

A step runs when its `when` matches the run so far: `ok` while nothing went wrong, `escalated`
once a step escalated or failed, `always` regardless. A step that raises is a failed step (a
plugin's bug included): the run goes on to its `always` and `escalated` steps.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from likkerctl.runbooks.context import RunContext, Step, StepResult, render
from likkerctl.runbooks.spec import Runbook


@dataclass
class StepReport:
    index: int
    step: str
    status: str
    summary: str
    seconds: float

    def as_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "step": self.step,
            "status": self.status,
            "summary": self.summary,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class RunReport:
    runbook: str
    mode: str
    outcome: str = "ok"  # ok | stopped | observed (a dry run) | escalated | failed
    steps: list[StepReport] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "runbook": self.runbook,
            "mode": self.mode,
            "outcome": self.outcome,
            "steps": [s.as_json() for s in self.steps],
        }


def _render_params(params: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    variables = ctx.template_vars()
    return {k: render(v, variables) if isinstance(v, str) else v for k, v in params.items()}


def run(runbook: Runbook, ctx: RunContext, steps: Mapping[str, Step]) -> RunReport:
    """Run `runbook` for `ctx.alert`, recording the run itself in the audit log."""
    report = RunReport(runbook.name, ctx.mode)
    with ctx.record(
        f"runbook {runbook.name}",
        {"alertname": ctx.alert.name, "labels": dict(ctx.alert.labels), "mode": ctx.mode},
    ) as counts:
        escalated = failed = stopped = False
        for index, spec in enumerate(runbook.steps):
            healthy = not (escalated or failed or stopped)
            due = (
                spec.when == "always"
                or (spec.when == "ok" and healthy)
                or (spec.when == "escalated" and (escalated or failed))
            )
            began = time.monotonic()
            if not due:
                result = StepResult("skipped", f"not run (when = {spec.when})")
            else:
                ctx.log(f"{runbook.name}[{index}] {spec.step}: starting")
                result = _run_step(steps.get(spec.step), spec.step, spec.params, ctx)
            if result.status == "failed":
                failed = True
            elif result.status == "escalate":
                escalated = True
            elif result.status == "stop":
                stopped = True
            if result.status in ("failed", "escalate") and not ctx.state.get("escalation"):
                ctx.state["escalation"] = f"{spec.step}: {result.summary}"
            step_report = StepReport(
                index, spec.step, result.status, result.summary, time.monotonic() - began
            )
            report.steps.append(step_report)
            if due:
                ctx.log(f"{runbook.name}[{index}] {spec.step}: {result.status}: {result.summary}")
            counts["steps"] = [s.as_json() for s in report.steps]
        report.outcome = (
            "failed"
            if failed
            else "escalated"
            if escalated
            else "observed"
            if ctx.dry_run
            else "stopped"
            if stopped
            else "ok"
        )
        counts["outcome"] = report.outcome
        if failed or escalated:
            counts["error"] = ctx.state.get("escalation", report.outcome)
    return report


def _run_step(impl: Step | None, name: str, params: dict[str, Any], ctx: RunContext) -> StepResult:
    if impl is None:  # a plugin step that failed to load since the file was checked
        return StepResult("failed", f"step {name!r} is not available (plugin failed to load?)")
    try:
        rendered = _render_params(params, ctx)
        result = impl.run(ctx, rendered)
        if not isinstance(result, StepResult):
            return StepResult("failed", f"step {name!r} returned {type(result).__name__}")
        return result
    except Exception as exc:  # a step's error, a plugin's bug: recorded, never fatal
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return StepResult("failed", f"{type(exc).__name__}: {message}")
