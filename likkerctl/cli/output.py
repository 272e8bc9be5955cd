"""What every command shares: the chosen profile, one output path (a `--json` document on
stdout, or Rich for people; progress and notes on stderr), confirmation, and running an
operation with its dry run, prompt and progress bar."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any

import typer
from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

from likkerctl.core import operations
from likkerctl.core.errors import NotConfirmed
from likkerctl.core.move import Progress as MoveProgress
from likkerctl.core.profile import Profile, load_profile
from likkerctl.core.readings import Readings

# Piped output keeps whole names and ids instead of wrapping at 80 columns.
out = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, highlight=False)

# How a level of urgency (likkerctl.core.readable.Level) looks in a terminal.
LEVEL_STYLE = {"critical": "red", "warning": "yellow", "ok": "green"}

JsonOut = Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")]
DryRun = Annotated[
    bool, typer.Option("--dry-run", help="Say exactly what would happen; change nothing.")
]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
Where = Annotated[
    str | None,
    typer.Option(
        "--where",
        "-w",
        help="Select messages, e.g. 'bot=42', 'user in (7,9) and deliveries>=10'. "
        "See `likkerctl help-predicates`.",
        show_default=False,
    ),
]


@dataclass
class AppState:
    """The root context's object: the profile, loaded on first use.

    `readings` replaces the live servers for `status` (in-process tests feed a recording).
    """

    profile_name: str | None = None
    _profile: Profile | None = field(default=None, repr=False)
    readings: Readings | None = field(default=None, repr=False)

    @property
    def profile(self) -> Profile:
        if self._profile is None:
            self._profile = load_profile(self.profile_name)
        return self._profile


def state(ctx: typer.Context) -> AppState:
    root = ctx.find_root()
    if not isinstance(root.obj, AppState):
        root.obj = AppState()
    return root.obj


def emit_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def show(json_out: bool, document: Any, *human: RenderableType) -> None:
    """The one way a command answers: `document` as JSON, or `human` printed for people."""
    if json_out:
        emit_json(document)
        return
    for part in human:
        out.print(part)


def styled(text: str, level: str) -> str:
    return f"[{LEVEL_STYLE[level]}]{text}[/]"


def confirm(yes: bool, question: str) -> None:
    """Ask unless --yes; refuse (exit 2) when nobody can answer."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise NotConfirmed(f"{question} — not confirmed: pass --yes to act without a prompt")
    if not typer.confirm(question, default=False, err=True):
        raise NotConfirmed("cancelled; nothing was changed")


@contextmanager
def progress_bar(label: str, enabled: bool) -> Iterator[Callable[[int, int, float], None]]:
    """A progress bar with rate and ETA on stderr; `update(done, total, rate)`.

    It appears at the first update, so it never draws over a confirmation prompt.
    """
    if not enabled or not err.is_terminal:
        yield lambda done, total, rate: None
        return
    bar = Progress(
        TextColumn(f"{label} "),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>9,.0f} msg/s"),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )
    task = bar.add_task(label, total=None, rate=0.0)
    started = False

    def update(done: int, total: int, rate: float) -> None:
        nonlocal started
        if not started:
            bar.start()
            started = True
        bar.update(task, completed=done, total=total, rate=rate)

    try:
        yield update
    finally:
        if started:
            bar.stop()


def perform(
    ctx: typer.Context,
    op: operations.Operation,
    dry_run: bool,
    yes: bool,
    json_out: bool,
    progress_label: str | None = None,
) -> dict[str, Any] | None:
    """Run `op` for the CLI: dry run printed, or confirmed, executed (with a progress bar).

    Returns the result, or None for a dry run (already printed).
    """
    profile = state(ctx).profile
    with progress_bar(progress_label or "", progress_label is not None and not json_out) as update:

        def on_progress(p: MoveProgress) -> None:
            update(p.scanned, p.total, p.rate)

        done = operations.perform(
            profile,
            op,
            dry_run=dry_run,
            confirm=lambda question: confirm(yes, question),
            on_progress=on_progress,
        )
    if done.result is None:
        why = done.plan.get("engine_reason")
        lines = [
            f"dry run: {done.summary}",
            *([f"engine {done.plan['engine']}: {why}"] if why else []),
        ]
        show(json_out, {"dry_run": True, **done.plan}, *lines)
    return done.result
