"""`a`: the webhook's runs waiting for approval, each with its plan; approve or reject one.

The decision is the same as `likkerctl webhook approve|reject RUN` (operations.RunDecision:
the database, audited under the run's alert); the webhook acts on it within a second.
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
from textual.widgets import Button, DataTable, Static
from textual.worker import Worker, get_current_worker

from likkerctl.core.errors import first_line as describe_error
from likkerctl.tui import render
from likkerctl.tui.backend import Backend


class ApprovalsScreen(ModalScreen[None]):
    """The waiting runs, the selected one's plan, and its decision."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "decide('approve')", "Approve"),
        Binding("x", "decide('reject')", "Reject"),
        Binding("escape,n", "close", "Close"),
    ]

    class Decided(Message):
        """A decision was taken (or refused), so the panels can refresh."""

        def __init__(self, run_id: int, verb: str, succeeded: bool) -> None:
            super().__init__()
            self.run_id = run_id
            self.verb = verb
            self.succeeded = succeeded

    def __init__(self, backend: Backend, waiting: list[dict[str, Any]], now: float) -> None:
        super().__init__()
        self.backend = backend
        self.waiting = {str(w["run"]): w for w in waiting}
        self.now = now
        self.busy = False

    def compose(self) -> ComposeResult:
        with Vertical(id="approvals"):
            yield Static("[b]Runs waiting for approval[/]", id="approvals-title")
            table: DataTable[Any] = DataTable(id="approvals-table", cursor_type="row")
            yield table
            yield Static("", id="approvals-plan")
            yield Static("", id="approvals-status")
            with Horizontal(id="approvals-buttons"):
                yield Button("Approve (y)", id="approve", variant="error")
                yield Button("Reject (x)", id="reject", variant="warning")
                yield Button("Close (esc)", id="close")

    def on_mount(self) -> None:
        table = self.query_one("#approvals-table", DataTable)
        table.add_columns(*render.APPROVAL_COLUMNS)
        render.fill_table(table, render.approval_rows(list(self.waiting.values()), self.now))
        if not self.waiting:
            self.query_one("#approvals-status", Static).update("No run is waiting for approval.")
            for button in ("#approve", "#reject"):
                self.query_one(button, Button).disabled = True
            return
        table.focus()
        self.show_selected()
        self.query_one("#approvals-status", Static).update(
            "[b]y[/] approves the selected run (the webhook runs it), [b]x[/] rejects it "
            "(nothing is done; it escalates), [b]esc[/] closes."
        )

    def selected(self) -> dict[str, Any] | None:
        table = self.query_one("#approvals-table", DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return self.waiting.get(str(key))

    @on(DataTable.RowHighlighted, "#approvals-table")
    def show_selected(self) -> None:
        w = self.selected()
        if w is not None:
            self.query_one("#approvals-plan", Static).update(render.approval_plan(w))

    @on(Button.Pressed, "#approve")
    def approve_pressed(self) -> None:
        self.action_decide("approve")

    @on(Button.Pressed, "#reject")
    def reject_pressed(self) -> None:
        self.action_decide("reject")

    def action_decide(self, verb: str) -> None:
        w = self.selected()
        if w is None or self.busy:
            return
        self.busy = True
        self.query_one("#approvals-status", Static).update(f"{verb}: run {w['run']}…")
        self.decide(verb, int(w["run"]))

    def _show(self, worker: Worker[Any], show: Callable[..., None], *args: Any) -> None:
        if not worker.is_cancelled:
            self.app.call_from_thread(show, *args)

    @work(thread=True, exit_on_error=False)
    def decide(self, verb: str, run_id: int) -> None:
        worker = get_current_worker()
        try:
            result = self.backend.execute(self.backend.decision(verb, run_id), lambda *_: None)
        except Exception as exc:
            self._show(worker, self.show_decision, run_id, verb, None, exc)
            return
        self._show(worker, self.show_decision, run_id, verb, result, None)

    def show_decision(
        self,
        run_id: int,
        verb: str,
        result: dict[str, Any] | None,
        exc: BaseException | None,
    ) -> None:
        self.busy = False
        status = self.query_one("#approvals-status", Static)
        if result is None:
            status.update(f"[b red]{verb} failed[/]: {describe_error(exc or ValueError('?'))}")
        else:
            status.update(f"[b green]{result.get('summary', 'done')}[/]")
        self.post_message(self.Decided(run_id, verb, result is not None))

    @on(Button.Pressed, "#close")
    def action_close(self) -> None:
        self.dismiss()
