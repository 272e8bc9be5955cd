"""`f`: the runbook of the firing alert, from the dashboard, in one confirmation.

Every step's dry run first, in order (the same engine as the webhook's, mode `manual`);
`y` runs them all, showing each step's progress and result; the audit rows are the
webhook's, under the alert's key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, OptionList, Static
from textual.widgets.option_list import Option
from textual.worker import Worker, get_current_worker

from likkerctl.core.errors import first_line as describe_error
from likkerctl.runbooks import engine
from likkerctl.tui import render
from likkerctl.tui.backend import Backend, RunbookChoice, RunbookPlan


class RunbookScreen(ModalScreen[None]):
    """Pick (when it is not obvious), plan, confirm once, run: one screen."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "confirm", "Run every step"),
        Binding("escape,n", "close", "Cancel / close"),
    ]

    class Finished(Message):
        """The run is over, so whatever shows its effects can refresh."""

        def __init__(self, runbook: str, outcome: str) -> None:
            super().__init__()
            self.runbook = runbook
            self.outcome = outcome

    def __init__(self, backend: Backend, alerts: dict[str, Any] | None) -> None:
        super().__init__()
        self.backend = backend
        self.alerts = alerts
        self.stage = "choosing"  # choosing → planning → confirm → running → done | failed
        self.choices: list[RunbookChoice] = []
        self.planned: RunbookPlan | None = None
        self.report: engine.RunReport | None = None  # the run's, when it is over
        self.rows: dict[int, render.StepRow] = {}

    def compose(self) -> ComposeResult:
        with Vertical(id="runbook"):
            yield Static("[b]Run a runbook[/]", id="runbook-title")
            yield OptionList(id="runbook-choices")
            yield Static("", id="runbook-steps")
            yield Static("finding the runbook of the firing alert…", id="runbook-status")
            with Horizontal(id="runbook-buttons"):
                yield Button("Run every step (y)", id="confirm", variant="error", disabled=True)
                yield Button("Cancel (esc)", id="close")

    def on_mount(self) -> None:
        self.query_one("#runbook-choices").display = False
        self.choose()

    def _show(self, worker: Worker[Any], show: Callable[..., None], *args: Any) -> None:
        # Closing this screen cancels its workers and removes the widgets `show` updates;
        # a runbook already running carries on to its end (so what it paused is resumed).
        if not worker.is_cancelled:
            self.app.call_from_thread(show, *args)

    # -- choosing --------------------------------------------------------------------
    @work(thread=True, exit_on_error=False)
    def choose(self) -> None:
        worker = get_current_worker()
        try:
            choices = self.backend.runbook_choices(self.alerts)
        except Exception as exc:
            self._show(worker, self.show_failure, "cannot load the runbooks", exc)
            return
        self._show(worker, self.show_choices, choices)

    def show_choices(self, choices: list[RunbookChoice]) -> None:
        self.choices = choices
        firing = [c for c in choices if c.alert.fingerprint != "manual"]
        if len(firing) == 1:
            self.plan(firing[0])
            return
        if not choices:
            self.show_failure("no runbook", ValueError("the runbook file has none"))
            return
        picker = self.query_one("#runbook-choices", OptionList)
        shown = firing or choices
        picker.add_options([Option(c.label, id=str(choices.index(c))) for c in shown])
        picker.display = True
        picker.focus()
        self.query_one("#runbook-status", Static).update(
            "Which runbook? (enter picks, esc cancels)"
            if firing
            else "No firing alert has a runbook. Pick one to run anyway (enter), esc cancels."
        )

    @on(OptionList.OptionSelected, "#runbook-choices")
    def picked(self, event: OptionList.OptionSelected) -> None:
        if self.stage == "choosing" and event.option.id is not None:
            self.query_one("#runbook-choices").display = False
            self.plan(self.choices[int(event.option.id)])

    # -- planning --------------------------------------------------------------------
    def plan(self, choice: RunbookChoice) -> None:
        self.stage = "planning"
        self.query_one("#runbook-title", Static).update(render.runbook_title(choice))
        self.query_one("#runbook-status", Static).update("dry run of every step…")
        self.planning(choice)

    @work(thread=True, exit_on_error=False)
    def planning(self, choice: RunbookChoice) -> None:
        worker = get_current_worker()

        def step(index: int, report: engine.StepReport | None) -> None:
            self._show(worker, self.show_step, index, report, True)

        try:
            planned = self.backend.plan_runbook(choice, step)
        except Exception as exc:
            self._show(worker, self.show_failure, "dry run failed", exc)
            return
        self._show(worker, self.show_plan, planned)

    def show_step(self, index: int, report: engine.StepReport | None, dry: bool) -> None:
        row = self.rows.get(index)
        name = report.step if report else (row.step if row else "?")
        if report is None:
            self.rows[index] = render.StepRow(index, name, "running", "…", dry)
        else:
            self.rows[index] = render.StepRow(index, name, report.status, report.summary, dry)
        self.query_one("#runbook-steps", Static).update(render.runbook_steps(self.rows))

    def show_plan(self, planned: RunbookPlan) -> None:
        self.planned = planned
        self.stage = "confirm"
        self.query_one("#runbook-status", Static).update(render.plan_status(planned))
        button = self.query_one("#confirm", Button)
        button.disabled = False
        button.focus()

    def show_failure(self, what: str, exc: BaseException) -> None:
        self.stage = "failed"
        self.query_one("#runbook-status", Static).update(f"[b red]{what}[/]: {describe_error(exc)}")
        self.query_one("#confirm", Button).disabled = True
        self.query_one("#close", Button).label = "Close (esc)"

    # -- running ---------------------------------------------------------------------
    @on(Button.Pressed, "#confirm")
    def action_confirm(self) -> None:
        if self.stage != "confirm" or self.planned is None:
            return
        self.stage = "running"
        self.query_one("#confirm", Button).disabled = True
        for index, row in self.rows.items():  # what is done now replaces what would be
            self.rows[index] = render.StepRow(index, row.step, "waiting", "", False)
        self.query_one("#runbook-steps", Static).update(render.runbook_steps(self.rows))
        self.query_one("#runbook-status", Static).update(
            "running… (closing this keeps it running to its end)"
        )
        self.running(self.planned)

    @work(thread=True, exit_on_error=False)
    def running(self, planned: RunbookPlan) -> None:
        worker = get_current_worker()

        def step(index: int, report: engine.StepReport | None) -> None:
            self._show(worker, self.show_step, index, report, False)

        try:
            report = self.backend.run_runbook(planned, step)
        except Exception as exc:
            self._show(worker, self.show_run_failure, exc)
            return
        self._show(worker, self.show_result, report)

    def show_run_failure(self, exc: BaseException) -> None:
        self.show_failure("failed", exc)
        runbook = self.planned.choice.runbook if self.planned else ""
        self.post_message(self.Finished(runbook, "failed"))

    def show_result(self, report: engine.RunReport) -> None:
        self.report = report
        self.stage = "done"
        self.query_one("#runbook-status", Static).update(render.run_status(report))
        self.query_one("#close", Button).label = "Close (esc)"
        self.post_message(self.Finished(report.runbook, report.outcome))

    @on(Button.Pressed, "#close")
    def action_close(self) -> None:
        self.dismiss()
