"""Run one runbook for one alert: each step in order, its outcome recorded, never a crash.

A step runs when its `when` matches the run so far: `ok` while nothing went wrong, `escalated`
once a step escalated or failed, `always` regardless. A step that raises is a failed step (a
plugin's bug included): the run goes on to its `always` and `escalated` steps.

Besides a whole run (`phase="run"`, also the plan of an approve or manual run: every step as
its dry run), a phase runs only some steps: `pending` the steps that tell a human a run
waits for approval; `refused` (rejected, or no decision in time) only the `escalated` ones;
`recover` (a run a crash interrupted) its `always` steps from where it stopped, then the
`escalated` ones.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

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

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StepReport:
        return cls(data["index"], data["step"], data["status"], data["summary"], data["seconds"])


Phase = Literal["run", "pending", "refused", "recover"]
# Which `when` values each phase runs.
PHASES: dict[str, tuple[str, ...]] = {
    "run": ("ok", "escalated", "always"),
    "pending": ("pending",),
    "refused": ("escalated",),
    "recover": ("always", "escalated"),
}
# (index, None) when a step starts; (index, its report) when it ended.
OnStep = Callable[[int, StepReport | None], None]


@dataclass
class RunReport:
    runbook: str
    mode: str
    # ok | stopped | observed (observe mode) | planned (the plan of an approve or manual run)
    # | escalated | failed
    outcome: str = "ok"
    steps: list[StepReport] = field(default_factory=list)
    phase: str = "run"

    def as_json(self) -> dict[str, Any]:
        return {
            "runbook": self.runbook,
            "mode": self.mode,
            "phase": self.phase,
            "outcome": self.outcome,
            "steps": [s.as_json() for s in self.steps],
        }

    @property
    def needs_a_human(self) -> bool:
        return self.outcome in ("escalated", "failed")


def _render_params(params: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
    variables = ctx.template_vars()
    return {k: render(v, variables) if isinstance(v, str) else v for k, v in params.items()}


def run(
    runbook: Runbook,
    ctx: RunContext,
    steps: Mapping[str, Step],
    *,
    phase: Phase = "run",
    escalation: str | None = None,
    start: int = 0,
    on_step: OnStep | None = None,
) -> RunReport:
    """Run `runbook` (or one phase of it) for `ctx.alert`, recording the run itself in the
    audit log.

    `escalation` starts the run escalated, saying why (a rejection, an interruption);
    `start` leaves out the steps before it (those a crashed run had finished).
    """
    kinds = PHASES[phase]
    report = RunReport(runbook.name, ctx.mode, phase=phase)
    params: dict[str, Any] = {
        "alertname": ctx.alert.name,
        "labels": dict(ctx.alert.labels),
        "mode": ctx.mode,
    }
    if phase != "run" or ctx.planning:
        params["phase"] = "plan" if ctx.planning else phase
    with ctx.record(f"runbook {runbook.name}", params) as counts:
        escalated = escalation is not None
        failed = stopped = False
        if escalation is not None:
            ctx.state["escalation"] = escalation
        for index, spec in enumerate(runbook.steps):
            if index < start or (phase != "run" and spec.when not in kinds):
                continue  # not part of this phase: not in its report either
            healthy = not (escalated or failed or stopped)
            due = spec.when in kinds and (
                spec.when in ("always", "pending")
                or (spec.when == "ok" and healthy)
                or (spec.when == "escalated" and (escalated or failed))
            )
            began = time.monotonic()
            if not due:
                result = StepResult("skipped", f"not run (when = {spec.when})")
            else:
                ctx.log(f"{runbook.name}[{index}] {spec.step}: starting")
                if on_step is not None:
                    on_step(index, None)
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
            if on_step is not None:
                on_step(index, step_report)
            counts["steps"] = [s.as_json() for s in report.steps]
        report.outcome = (
            "failed"
            if failed
            else "escalated"
            if escalated
            else "planned"
            if ctx.planning
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
