"""Where the dashboard's figures come from, and where its actions go.

The figures are the core's readings (`likkerctl.core.readings`: the same parts `likkerctl
status` reads); the actions run through `operations.perform`, like the CLI's and the
runbooks'; a runbook (`f`) runs through the webhook's engine (`likkerctl.runbooks.engine`)
in mode `manual`, planned first. `RecordedBackend` replays a recording (`likkerctl
dashboard --record`) and its recorded actions and runbook runs, so screens can be tested
and benchmarked deterministically.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from likkerctl.core import operations
from likkerctl.core.errors import NotFound
from likkerctl.core.profile import Profile
from likkerctl.core.readings import PARTS, LiveReadings, RecordedReadings
from likkerctl.core.store.alerts import alert_key
from likkerctl.plugins.runbooks import load_runbooks
from likkerctl.runbooks import approval, engine, spec
from likkerctl.runbooks.context import AlertInfo, RunContext, Step
from likkerctl.runbooks.spec import RunbookSet
from likkerctl.runbooks.steps import builtin

__all__ = [
    "PARTS",
    "Backend",
    "LiveBackend",
    "OnProgress",
    "RecordedBackend",
    "RunbookChoice",
    "RunbookPlan",
]

OnProgress = Callable[[int, int, float], None]
OnStep = engine.OnStep


@dataclass(frozen=True)
class RunbookChoice:
    """A runbook to run from the dashboard, and the firing alert it is for (if any)."""

    runbook: str
    alert: AlertInfo
    label: str  # one line for the picker
    webhook_run: dict[str, Any] | None = None  # the webhook's ledger row of that alert


@dataclass
class RunbookPlan:
    """A planned manual run: every step's dry run, and the state the plan left."""

    choice: RunbookChoice
    report: engine.RunReport
    state: dict[str, Any] = field(default_factory=dict)


def choices_for(
    book: RunbookSet,
    alerts: dict[str, Any] | None,
    filed: Callable[[str, datetime], dict[str, Any] | None],
) -> list[RunbookChoice]:
    """The runbooks of the firing alerts (first), then every runbook on its own.

    `filed(fingerprint, startsAt)` finds the webhook's ledger row of an alert, so a manual
    run's audit rows go under the key the webhook's went under.
    """
    found: list[RunbookChoice] = []
    for a in (alerts or {}).get("alerts", []):
        labels = a.get("labels") or {"alertname": a.get("name") or ""}
        annotations = a.get("annotations") or {}
        runbook = book.match(a.get("name") or "", annotations)
        if runbook is None or not a.get("fingerprint") or not a.get("startsAt"):
            continue
        starts = datetime.fromisoformat(str(a["startsAt"]).replace("Z", "+00:00"))
        row = filed(a["fingerprint"], starts)
        key = row["alert"] if row else alert_key(a["fingerprint"], starts)
        info = AlertInfo(a["name"], key, a["fingerprint"], labels, annotations)
        label = f"{runbook.name} for {a['name']} (firing since {starts:%H:%M:%S} UTC)"
        found.append(RunbookChoice(runbook.name, info, label, row))
    for name, runbook in book.runbooks.items():
        key = f"manual:{name}"
        info = AlertInfo(runbook.alerts[0] if runbook.alerts else "", key, "manual", {}, {})
        found.append(RunbookChoice(name, info, f"{name} (no alert firing for it)"))
    return found


class Backend(Protocol):
    profile: Profile

    def fetch(self, part: str) -> Any: ...

    def now(self) -> float: ...

    def dry_run(self, op: operations.Operation) -> dict[str, Any]: ...

    def execute(self, op: operations.Operation, on_progress: OnProgress) -> dict[str, Any]: ...

    def runbook_choices(self, alerts: dict[str, Any] | None) -> list[RunbookChoice]: ...

    def plan_runbook(self, choice: RunbookChoice, on_step: OnStep) -> RunbookPlan: ...

    def run_runbook(self, plan: RunbookPlan, on_step: OnStep) -> engine.RunReport: ...

    def decision(self, verb: str, run_id: int) -> operations.Operation: ...


class LiveBackend(LiveReadings):
    """The servers of a profile; actions through operations.perform (audited); runbooks
    through the webhook's engine, from `runbooks` (default: the built-in file)."""

    def __init__(
        self,
        profile: Profile,
        sample_size: int = 500,
        all_queues: bool = False,
        runbooks: Path | None = None,
        offenders_by: str = "actor",
        offenders_queue: str | None = None,
    ) -> None:
        super().__init__(profile, sample_size, all_queues, offenders_by, offenders_queue)
        self.runbooks_path = runbooks
        self._book: tuple[RunbookSet, dict[str, Step]] | None = None

    def book(self) -> tuple[RunbookSet, dict[str, Step]]:
        if self._book is None:
            book, steps, _ = load_runbooks(self.runbooks_path)
            self._book = (book, steps)
        return self._book

    def runbook_choices(self, alerts: dict[str, Any] | None) -> list[RunbookChoice]:
        from likkerctl.core.store import alerts as filed  # SQLAlchemy: only when asked

        book, _ = self.book()
        return choices_for(book, alerts, lambda fp, at: filed.filed(self.profile.audit_url, fp, at))

    def _context(self, choice: RunbookChoice, **kw: Any) -> RunContext:
        from likkerctl.core.store import audit  # SQLAlchemy: only when a runbook runs

        return RunContext(
            self.profile,
            "manual",
            choice.runbook,
            choice.alert,
            decided_by=f"{audit.os_user()} (dashboard)",
            **kw,
        )

    def plan_runbook(self, choice: RunbookChoice, on_step: OnStep) -> RunbookPlan:
        book, steps = self.book()
        ctx = self._context(choice, planning=True)
        report = engine.run(book.runbooks[choice.runbook], ctx, steps, on_step=on_step)
        return RunbookPlan(choice, report, dict(ctx.state))

    def run_runbook(self, plan: RunbookPlan, on_step: OnStep) -> engine.RunReport:
        book, steps = self.book()
        ctx = self._context(plan.choice)
        actors = approval.approved_actors({"state": plan.state})
        if actors is not None:  # act on no one the plan on the screen did not name
            ctx.state["approved_actors"] = actors
        return engine.run(book.runbooks[plan.choice.runbook], ctx, steps, on_step=on_step)

    def decision(self, verb: str, run_id: int) -> operations.Operation:
        return operations.RunDecision.of(self.profile, verb, run_id)

    def dry_run(self, op: operations.Operation) -> dict[str, Any]:
        return operations.perform(self.profile, op, dry_run=True).plan

    def execute(self, op: operations.Operation, on_progress: OnProgress) -> dict[str, Any]:
        def progress(p: Any) -> None:
            on_progress(p.scanned, p.total, p.rate)

        done = operations.perform(self.profile, op, dry_run=False, on_progress=progress)
        assert done.result is not None
        return done.result


class RecordedBackend(RecordedReadings):
    """A recording's parts, its recorded actions and runbook runs.

    A recorded action's `progress` is reported and then the run waits (until `release`),
    so a screen can be captured mid-action. A recorded runbook (`runbooks.NAME`: `plan` and
    `run`, each a run's report as the engine returns it) is replayed step by step; its run
    waits for `release` after `pause_after` steps, when given.
    """

    def __init__(self, data: dict[str, Any], profile: Profile | None = None) -> None:
        super().__init__(data, profile)
        self.release = threading.Event()

    def runbook_choices(self, alerts: dict[str, Any] | None) -> list[RunbookChoice]:
        book = spec.load(None, builtin())
        return [
            c for c in choices_for(book, alerts, lambda fp, at: None) if c.runbook in self._runs
        ]

    @property
    def _runs(self) -> dict[str, Any]:
        return dict(self.data.get("runbooks", {}))

    def _replay(
        self, recorded: dict[str, Any], on_step: OnStep, pause: int | None
    ) -> engine.RunReport:
        report = engine.RunReport(recorded["runbook"], recorded["mode"], recorded["outcome"])
        for n, data in enumerate(recorded["steps"]):
            step = engine.StepReport.from_json(data)
            if pause is not None and n == pause:
                self.release.wait(timeout=10)  # a test captures the screen meanwhile
            if step.status != "skipped":
                on_step(step.index, None)
            on_step(step.index, step)
            report.steps.append(step)
        return report

    def plan_runbook(self, choice: RunbookChoice, on_step: OnStep) -> RunbookPlan:
        recorded = self._runs[choice.runbook]
        report = self._replay(recorded["plan"], on_step, None)
        return RunbookPlan(choice, report, dict(recorded.get("state", {})))

    def run_runbook(self, plan: RunbookPlan, on_step: OnStep) -> engine.RunReport:
        recorded = self._runs[plan.choice.runbook]
        return self._replay(recorded["run"], on_step, recorded.get("pause_after"))

    def decision(self, verb: str, run_id: int) -> operations.Operation:
        return operations.RunDecision(verb, run_id)  # no database: the recording answers

    def _action(self, op: operations.Operation) -> dict[str, Any]:
        actions = self.data.get("actions", {})
        if op.command not in actions:
            raise NotFound(f"no recorded {op.command!r} action")
        return dict(actions[op.command])

    def dry_run(self, op: operations.Operation) -> dict[str, Any]:
        return dict(self._action(op)["plan"])

    def execute(self, op: operations.Operation, on_progress: OnProgress) -> dict[str, Any]:
        recorded = self._action(op)
        if "progress" in recorded:
            on_progress(*recorded["progress"])
            self.release.wait(timeout=10)  # a test captures the screen meanwhile
        return dict(recorded["result"])
