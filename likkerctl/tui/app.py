"""The incident dashboard: every panel from its own worker; actions previewed, then confirmed.

Each part (see backend.PARTS) is fetched in a thread worker on its own schedule, so the UI
thread only renders. A part whose fetch fails keeps its last figures, marked stale, and
says why in its panel's subtitle; the others carry on. Which panel is drawn from which
parts, and how, is one table: VIEWS.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static
from textual.worker import get_current_worker

from likkerctl.core import operations
from likkerctl.core.errors import first_line as describe_error
from likkerctl.core.messages import fields
from likkerctl.tui import render
from likkerctl.tui.backend import PARTS, Backend
from likkerctl.tui.parts import Part
from likkerctl.tui.screens.action import ActionScreen
from likkerctl.tui.screens.approvals import ApprovalsScreen
from likkerctl.tui.screens.help import HelpScreen
from likkerctl.tui.screens.runbook import RunbookScreen
from likkerctl.tui.widgets.panel import Panel

__all__ = ["ActionScreen", "ApprovalsScreen", "Dashboard", "RunbookScreen"]

HISTORY = 60  # depth samples kept per queue for the sparkline


@dataclass(frozen=True)
class View:
    """One panel's content: which parts it is drawn from, and how."""

    widget: str  # id of the Static (drawn as Text) or DataTable (drawn as rows) it fills
    panel: str  # id of the Panel around it
    reads: tuple[str, ...]  # `draw`'s arguments after the app, in order; any of them redraws it
    marked_by: tuple[str, ...]  # parts whose failure marks the panel; the first failing says why
    draw: Callable[..., Text | list[render.Row]]  # (app, *values of `reads`)
    note: Callable[..., str] | None = None  # (*Parts of `reads`): the subtitle while fresh


VIEWS: tuple[View, ...] = (
    View(
        "queues",
        "p-queues",
        reads=("queues",),
        marked_by=("queues",),
        draw=lambda app, queues: render.queue_rows(queues or [], app.history),
    ),
    View(
        "disk",
        "p-disk",
        reads=("nodes", "forecast"),
        marked_by=("nodes", "forecast"),
        draw=lambda app, nodes, forecast: render.disk_text(nodes, forecast),
    ),
    # The rate is the queues'; a failed sample only leaves out the delivery counts.
    View(
        "redeliveries",
        "p-redeliveries",
        reads=("queues", "offenders"),
        marked_by=("queues",),
        draw=lambda app, queues, offenders: render.redelivery_text(queues, offenders, app.backend),
    ),
    # Without the bots' statuses the sample still stands, so auth failing is only a note.
    View(
        "offenders",
        "p-offenders",
        reads=("offenders", "bots"),
        marked_by=("offenders",),
        draw=lambda app, offenders, bots: render.offender_rows(offenders, bots),
        note=lambda offenders, bots: render.offenders_note(offenders.value, bots.error),
    ),
    View(
        "takers",
        "p-takers",
        reads=("takers",),
        marked_by=("takers",),
        draw=lambda app, takers: render.taker_rows(takers or []),
    ),
    # The webhook's runs waiting for approval are listed above the alerts (when there are).
    View(
        "alerts",
        "p-alerts",
        reads=("alerts", "approvals"),
        marked_by=("alerts",),
        draw=lambda app, alerts, waiting: render.alerts_text(alerts, waiting, app.clock()),
    ),
    View(
        "audit",
        "p-audit",
        reads=("audit",),
        marked_by=("audit",),
        draw=lambda app, audit: render.audit_text(audit),
    ),
)


class Dashboard(App[None]):
    """likkerctl dashboard."""

    CSS_PATH = "dashboard.tcss"
    TITLE = "likkerctl"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("p", "pause_takers", "Pause takers"),
        Binding("r", "resume_takers", "Resume"),
        Binding("b", "block_bot", "Block bot"),
        Binding("s", "shovel_actor", "Shovel actor→DLQ"),
        Binding("x", "purge_queue", "Purge queue"),
        Binding("d", "replay_dlq", "Replay DLQ"),
        Binding("question_mark", "help", "Help"),
        Binding("q", "quit", "Quit"),
        # Not in the footer: the 80- and 120-column footers are full. `?` and ctrl+p list it.
        Binding("f", "run_runbook", "Fix: run the runbook", show=False),
        # In the footer only while a run waits for approval (check_action).
        Binding("a", "approvals", "Approve/reject"),
    ]
    # (title, action, help) for the command palette and the help screen.
    ACTIONS: ClassVar[list[tuple[str, str, str]]] = [
        ("Pause all takers", "pause_takers", "Takers cancel their consumers; messages wait."),
        ("Resume all takers", "resume_takers", "Paused takers consume again."),
        ("Block the selected bot", "block_bot", "The gateway answers it 403 from now on."),
        (
            "Shovel the selected actor's messages to the DLQ",
            "shovel_actor",
            "Lossless, selective; the rest stays in place.",
        ),
        (
            "Purge the selected queue (archived)",
            "purge_queue",
            "Archived to a JSON-lines file before each ack.",
        ),
        ("Replay the DLQ into the actions queue", "replay_dlq", "Lossless; headers kept."),
        (
            "Run the runbook of the firing alert",
            "run_runbook",
            "Every step's dry run, one confirmation, then each step (the webhook's engine).",
        ),
        (
            "Review the webhook's runs waiting for approval",
            "approvals",
            "Each run's plan; approve or reject it.",
        ),
        ("Refresh now", "refresh_now", "Fetch every panel again."),
    ]

    def __init__(
        self,
        backend: Backend,
        refresh_s: float = 2.0,
        sample_every_s: float = 15.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        super().__init__()
        self.backend = backend
        self.refresh_s = refresh_s
        self.sample_every_s = sample_every_s
        self.clock = clock or backend.now
        self.parts = {name: Part() for name in PARTS}
        self.history: dict[str, deque[int]] = {}
        self.sub_title = f"profile {backend.profile.name}"
        self.first_frame_at: float | None = None
        self.started_at = time.perf_counter()

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="grid"):
            queues: DataTable[Any] = DataTable(id="queues", cursor_type="row", zebra_stripes=True)
            yield Panel("queues", queues, id="p-queues")
            with Horizontal(classes="row"):
                yield Panel("disk", Static(id="disk"), id="p-disk")
                yield Panel("redeliveries", Static(id="redeliveries"), id="p-redeliveries")
            with Horizontal(classes="row"):
                offenders: DataTable[Any] = DataTable(id="offenders", cursor_type="row")
                yield Panel("offenders (sampled)", offenders, id="p-offenders")
                yield Panel("takers", DataTable(id="takers", cursor_type="none"), id="p-takers")
            with Horizontal(classes="row"):
                yield Panel("alerts", Static(id="alerts"), id="p-alerts")
                yield Panel("actions (audit log)", Static(id="audit"), id="p-audit")
        yield Footer()

    @property
    def main(self) -> Screen[Any]:
        """The dashboard itself (the bottom screen), whatever is shown on top of it."""
        return self.screen_stack[0]

    def on_mount(self) -> None:
        queues = self.screen.query_one("#queues", DataTable)
        queues.add_columns(*render.QUEUE_COLUMNS)
        offenders = self.screen.query_one("#offenders", DataTable)
        offenders.add_columns(*render.OFFENDER_COLUMNS)
        takers = self.screen.query_one("#takers", DataTable)
        takers.add_columns(*render.TAKER_COLUMNS)
        self.refresh_now()
        if self.refresh_s > 0:
            self.set_interval(self.refresh_s, self.tick)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "approvals":  # offered while the webhook waits on a decision
            return bool(self.parts["approvals"].value)
        return True

    def get_system_commands(self, screen: Screen[Any]) -> Any:
        yield from super().get_system_commands(screen)
        for title, action, help_text in self.ACTIONS:
            yield SystemCommand(title, help_text, partial(self.do_action, action))

    # -- fetching ------------------------------------------------------------------
    def interval_of(self, part: str) -> float:
        # Sampling redelivers what it reads, so the offenders panel samples less often.
        return self.sample_every_s if part == "offenders" else self.refresh_s

    def tick(self) -> None:
        now = time.monotonic()
        for name, part in self.parts.items():
            if not part.busy and now - part.last_try >= self.interval_of(name) - 0.05:
                self.fetch(name)

    def refresh_now(self) -> None:
        for name, part in self.parts.items():
            if not part.busy:
                self.fetch(name)

    def fetch(self, name: str) -> None:
        part = self.parts[name]
        part.busy = True
        part.last_try = time.monotonic()
        self.run_worker(partial(self._fetch, name), thread=True, group=name, exit_on_error=False)

    def _fetch(self, name: str) -> None:
        try:
            value, error = self.backend.fetch(name), None
        except Exception as exc:  # every failure becomes the panel's "down"/"stale" line
            value, error = None, describe_error(exc)
        # Only quitting cancels these workers, and then there is no UI left to update.
        if not get_current_worker().is_cancelled:
            self.call_from_thread(self.store, name, value, error)

    def store(self, name: str, value: Any, error: str | None) -> None:
        part = self.parts[name]
        part.busy = False
        if error is None:
            part.value, part.error, part.at = value, None, self.clock()
            if name == "queues":
                for q in value:
                    self.history.setdefault(q["name"], deque(maxlen=HISTORY)).append(
                        int(q["messages"])
                    )
        else:
            part.error = error
        self.render_part(name)
        if name == "approvals":
            self.refresh_bindings()
        if self.first_frame_at is None and all(p.at or p.error for p in self.parts.values()):
            self.first_frame_at = time.perf_counter() - self.started_at

    # -- rendering -----------------------------------------------------------------
    def render_part(self, name: str) -> None:
        screen = self.main
        now = self.clock()
        for view in VIEWS:
            if name not in view.reads:
                continue
            parts = [self.parts[n] for n in view.reads]
            content = view.draw(self, *(p.value for p in parts))
            if isinstance(content, Text):
                screen.query_one(f"#{view.widget}", Static).update(content)
            else:
                render.fill_table(screen.query_one(f"#{view.widget}", DataTable), content)
            marking = [self.parts[n] for n in view.marked_by]
            failing = next((p for p in marking if p.error), marking[0])
            note = view.note(*parts) if view.note else ""
            screen.query_one(f"#{view.panel}", Panel).freshness(failing, now, note)

    # -- actions -------------------------------------------------------------------
    def do_action(self, action: str) -> None:
        getattr(self, f"action_{action}")()

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_refresh_now(self) -> None:
        self.refresh_now()

    def _act(self, title: str, make: Callable[[], operations.Operation]) -> None:
        try:
            op = make()
        except Exception as exc:
            self.notify(describe_error(exc), title=title, severity="error")
            return
        self.push_screen(ActionScreen(self.backend, op, title))

    def action_run_runbook(self) -> None:
        self.push_screen(RunbookScreen(self.backend, self.parts["alerts"].value))

    def action_approvals(self) -> None:
        # Also from the palette, which check_action does not guard: an empty list says so.
        self.push_screen(
            ApprovalsScreen(self.backend, self.parts["approvals"].value or [], self.clock())
        )

    @on(ActionScreen.Finished)
    @on(RunbookScreen.Finished)
    @on(ApprovalsScreen.Decided)
    def refresh_after_action(self) -> None:
        # The run changed what the panels show (and added to the audit log): fetch them now
        # rather than at the next tick, which a replay (refresh_s=0) never has.
        self.refresh_now()

    def _selected(self, table_id: str) -> str | None:
        table = self.main.query_one(f"#{table_id}", DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return str(key) if key is not None else None

    def action_pause_takers(self) -> None:
        self._act("Pause all takers", lambda: operations.TakersCommand("pause"))

    def action_resume_takers(self) -> None:
        self._act("Resume all takers", lambda: operations.TakersCommand("resume"))

    def _selected_actor(self) -> tuple[str, int]:
        actor = self._selected("offenders")
        if not actor or ":" not in actor:
            raise ValueError("select an actor in the offenders panel first")
        kind, _, ident = actor.partition(":")
        return kind, int(ident)

    def action_block_bot(self) -> None:
        def make() -> operations.Operation:
            kind, ident = self._selected_actor()
            if kind != "bot":
                raise ValueError(f"the selected actor is a {kind}, not a bot")
            return operations.BotCommand(
                "block", ident, f"blocked from the dashboard: cycling in {self.profile_queue}"
            )

        self._act("Block the selected bot", make)

    @property
    def profile_queue(self) -> str:
        return self.backend.profile.actions_queue

    def action_shovel_actor(self) -> None:
        def make() -> operations.Operation:
            p = self.backend.profile
            by = getattr(self.backend, "offenders_by", None)
            if by is not None and by.name != "actor":
                # Ranked by another field: move the selected value's messages.
                value = self._selected("offenders")
                if value is None:
                    raise ValueError("select a row in the offenders panel first")
                source = getattr(self.backend, "offenders_queue", p.actions_queue)
                where = fields.equals(by.name, value)
                return operations.QueueMove(source, p.dlq, where, aliases=p.aliases)
            kind, ident = self._selected_actor()
            return operations.QueueMove(p.actions_queue, p.dlq, f"{kind}={ident}")

        self._act("Shovel the selected actor's messages to the DLQ", make)

    def action_purge_queue(self) -> None:
        def make() -> operations.Operation:
            queue = self._selected("queues")
            if not queue:
                raise ValueError("select a queue in the queues panel first")
            return operations.Purge.archived(self.backend.profile, queue)

        self._act("Purge the selected queue (archived)", make)

    def action_replay_dlq(self) -> None:
        p = self.backend.profile
        self._act(
            "Replay the DLQ into the actions queue",
            lambda: operations.QueueMove(p.dlq, p.actions_queue, command="dlq replay"),
        )
