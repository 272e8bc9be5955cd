"""The incident dashboard: every panel from its own worker; actions previewed, then confirmed.

Each part (see backend.PARTS) is fetched in a thread worker on its own schedule, so the UI
thread only renders. A part whose fetch fails keeps its last figures, marked stale, and
says why in its panel's subtitle; the others carry on.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Any, ClassVar

from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, DataTable, Footer, Header, Markdown, ProgressBar, Static

from likkerctl.core import operations
from likkerctl.core.errors import first_line as describe_error
from likkerctl.tui import render
from likkerctl.tui.backend import PARTS, Backend

HISTORY = 60  # depth samples kept per queue for the sparkline


class Part:
    """The latest answer of one source."""

    def __init__(self) -> None:
        self.value: Any = None
        self.error: str | None = None
        self.at: float | None = None  # when the value was fetched
        self.busy = False
        self.last_try = 0.0


class Panel(Vertical):
    """A bordered panel whose subtitle says how fresh its figures are."""

    def __init__(self, title: str, *children: Any, id: str) -> None:
        super().__init__(*children, id=id, classes="panel")
        self.border_title = title

    def freshness(self, part: Part, now: float) -> None:
        if part.error and part.value is None:
            self.border_subtitle = f"[b red]down[/]: {part.error}"
            self.set_class(True, "-down")
        elif part.error:
            age = now - (part.at or now)
            self.border_subtitle = f"[yellow]stale {age:.0f}s[/]: {part.error}"
            self.set_class(True, "-down")
        else:
            self.border_subtitle = ""
            self.set_class(False, "-down")


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [("escape,q,question_mark", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Markdown(render.HELP)


class ActionScreen(ModalScreen[None]):
    """Dry run first; on confirm, the run with live progress; then the result."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "confirm", "Confirm"),
        Binding("escape,n", "close", "Cancel / close"),
    ]

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

    @work(thread=True, exit_on_error=False)
    def plan(self) -> None:
        try:
            plan = self.backend.dry_run(self.op)
        except Exception as exc:
            self.app.call_from_thread(self.show_failure, "dry run failed", exc)
            return
        self.app.call_from_thread(self.show_plan, plan)

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
        def progress(done: int, total: int, rate: float) -> None:
            self.app.call_from_thread(self.show_progress, done, total, rate)

        try:
            result = self.backend.execute(self.op, progress)
        except Exception as exc:
            self.app.call_from_thread(self.show_failure, "failed", exc)
            return
        self.app.call_from_thread(self.show_result, result)

    def show_progress(self, done: int, total: int, rate: float) -> None:
        bar = self.query_one("#action-progress", ProgressBar)
        bar.update(total=max(total, done) or None, progress=done)
        self.query_one("#action-status", Static).update(
            f"running: {done:,} of {total:,} examined, {rate:,.0f} msg/s"
        )

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
        self.app.refresh_now()  # type: ignore[attr-defined]

    @on(Button.Pressed, "#close")
    def action_close(self) -> None:
        self.dismiss()


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
        if self.first_frame_at is None and all(p.at or p.error for p in self.parts.values()):
            self.first_frame_at = time.perf_counter() - self.started_at

    # -- rendering -----------------------------------------------------------------
    def render_part(self, name: str) -> None:
        screen = self.main
        now = self.clock()
        p = self.parts
        if name == "queues":
            render.fill_table(
                screen.query_one("#queues", DataTable),
                render.queue_rows(p["queues"].value or [], self.history),
                key=0,
            )
            screen.query_one("#p-queues", Panel).freshness(p["queues"], now)
        if name in ("nodes", "forecast"):
            screen.query_one("#disk", Static).update(
                render.disk_text(p["nodes"].value, p["forecast"].value)
            )
            worst = p["nodes"] if p["nodes"].error else p["forecast"]
            screen.query_one("#p-disk", Panel).freshness(worst, now)
        if name in ("queues", "offenders"):
            screen.query_one("#redeliveries", Static).update(
                render.redelivery_text(p["queues"].value, p["offenders"].value, self.backend)
            )
            screen.query_one("#p-redeliveries", Panel).freshness(p["queues"], now)
        if name in ("offenders", "bots"):
            render.fill_table(
                screen.query_one("#offenders", DataTable),
                render.offender_rows(p["offenders"].value, p["bots"].value),
                key=0,
            )
            panel = screen.query_one("#p-offenders", Panel)
            panel.freshness(p["offenders"], now)
            if p["bots"].error and not p["offenders"].error:
                panel.border_subtitle = f"[yellow]auth: {p['bots'].error}[/]"
            elif not p["offenders"].error and p["offenders"].value:
                o = p["offenders"].value
                panel.border_subtitle = f"{o['sampled']:,} of {o['depth']:,} sampled"
        if name == "takers":
            render.fill_table(
                screen.query_one("#takers", DataTable),
                render.taker_rows(p["takers"].value or []),
                key=0,
            )
            screen.query_one("#p-takers", Panel).freshness(p["takers"], now)
        if name == "alerts":
            screen.query_one("#alerts", Static).update(render.alerts_text(p["alerts"].value))
            screen.query_one("#p-alerts", Panel).freshness(p["alerts"], now)
        if name == "audit":
            screen.query_one("#audit", Static).update(render.audit_text(p["audit"].value))
            screen.query_one("#p-audit", Panel).freshness(p["audit"], now)

    # -- actions -------------------------------------------------------------------
    def do_action(self, action: str) -> None:
        getattr(self, f"action_{action}")()

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def _act(self, title: str, make: Callable[[], operations.Operation]) -> None:
        try:
            op = make()
        except Exception as exc:
            self.notify(describe_error(exc), title=title, severity="error")
            return
        self.push_screen(ActionScreen(self.backend, op, title))

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
            kind, ident = self._selected_actor()
            p = self.backend.profile
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
