"""The screen every dashboard action goes through, so nothing changes before its dry run has
been shown and confirmed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, ProgressBar, Static
from textual.worker import Worker, get_current_worker

from likkerctl.core import operations
from likkerctl.core.errors import first_line as describe_error
from likkerctl.tui import render
from likkerctl.tui.backend import Backend


class ActionScreen(ModalScreen[None]):
    """Dry run first; on confirm, the run with live progress; then the result."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "confirm", "Confirm"),
        Binding("escape,n", "close", "Cancel / close"),
    ]

    class Finished(Message):
        """The confirmed run is over, so whatever shows its effects can refresh."""

        def __init__(self, command: str, succeeded: bool) -> None:
            super().__init__()
            self.command = command  # the operation's name in the audit log
            self.succeeded = succeeded

    def __init__(self, backend: Backend, op: operations.Operation, title: str) -> None:
        super().__init__()
        self.backend = backend
        self.op = op
        self.title_text = title
        self.stage = "planning"  # planning → confirm → running → done | failed

    def compose(self) -> ComposeResult:
        with Vertical(id="action"):
            yield Static(f"[b]{self.title_text}[/]", id="action-title")
            yield Static("dry run…", id="action-plan")
            yield ProgressBar(total=None, id="action-progress", show_eta=False)
            yield Static("", id="action-status")
            with Horizontal(id="action-buttons"):
                yield Button("Confirm (y)", id="confirm", variant="error", disabled=True)
                yield Button("Cancel (esc)", id="close")

    def on_mount(self) -> None:
        self.query_one("#action-progress").display = False
        self.plan()

    def _show(self, worker: Worker[Any], show: Callable[..., None], *args: Any) -> None:
        # Closing this screen (or quitting) cancels its workers and removes the widgets
        # `show` would update; the operation itself carries on regardless.
        if not worker.is_cancelled:
            self.app.call_from_thread(show, *args)

    @work(thread=True, exit_on_error=False)
    def plan(self) -> None:
        worker = get_current_worker()
        try:
            plan = self.backend.dry_run(self.op)
        except Exception as exc:
            self._show(worker, self.show_failure, "dry run failed", exc)
            return
        self._show(worker, self.show_plan, plan)

    def show_plan(self, plan: dict[str, Any]) -> None:
        self.stage = "confirm"
        self.query_one("#action-plan", Static).update(render.plan_text(plan))
        self.query_one("#action-status", Static).update(
            "Nothing has been changed yet. [b]y[/] to do it, [b]esc[/] to cancel."
        )
        button = self.query_one("#confirm", Button)
        button.disabled = False
        button.focus()

    def show_failure(self, what: str, exc: BaseException) -> None:
        self.stage = "failed"
        self.query_one("#action-status", Static).update(f"[b red]{what}[/]: {describe_error(exc)}")
        self.query_one("#confirm", Button).disabled = True
        self.query_one("#close", Button).label = "Close (esc)"

    @on(Button.Pressed, "#confirm")
    def action_confirm(self) -> None:
        if self.stage != "confirm":
            return
        self.stage = "running"
        self.query_one("#confirm", Button).disabled = True
        self.query_one("#action-progress").display = True
        self.query_one("#action-status", Static).update("running… (closing this keeps it running)")
        self.execute()

    @work(thread=True, exit_on_error=False)
    def execute(self) -> None:
        # Captured here: get_current_worker() answers only in the worker's own thread, and
        # the Backend protocol does not promise which thread reports progress.
        worker = get_current_worker()

        def progress(done: int, total: int, rate: float) -> None:
            self._show(worker, self.show_progress, done, total, rate)

        try:
            result = self.backend.execute(self.op, progress)
        except Exception as exc:
            self._show(worker, self.show_run_failure, exc)
            return
        self._show(worker, self.show_result, result)

    def show_progress(self, done: int, total: int, rate: float) -> None:
        bar = self.query_one("#action-progress", ProgressBar)
        bar.update(total=max(total, done) or None, progress=done)
        self.query_one("#action-status", Static).update(
            f"running: {done:,} of {total:,} examined, {rate:,.0f} msg/s"
        )

    def show_run_failure(self, exc: BaseException) -> None:
        self.show_failure("failed", exc)
        self.finished(succeeded=False)

    def show_result(self, result: dict[str, Any]) -> None:
        self.stage = "done"
        bar = self.query_one("#action-progress", ProgressBar)
        bar.update(total=1, progress=1)
        colour = "red" if result.get("error") else "green"
        status = f"[b {colour}]{result.get('summary', 'done')}[/]"
        if result.get("error"):
            status += f"\n[red]{result['error']}[/]"
        self.query_one("#action-status", Static).update(status)
        self.query_one("#close", Button).label = "Close (esc)"
        self.finished(succeeded=not result.get("error"))

    def finished(self, succeeded: bool) -> None:
        # Posted to this screen, it bubbles to the app (a screen's parent in the DOM), so the
        # screen needs to know nothing of the app that listens.
        self.post_message(self.Finished(self.op.command, succeeded))

    @on(Button.Pressed, "#close")
    def action_close(self) -> None:
        self.dismiss()
