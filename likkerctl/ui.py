"""What every command shares: the chosen profile, --json output, confirmation, progress."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

from likkerctl.errors import USAGE, CliError
from likkerctl.profile import Profile, load_profile

# Piped output keeps whole names and ids instead of wrapping at 80 columns.
out = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, highlight=False)

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
    profile_name: str | None = None
    _profile: Profile | None = field(default=None, repr=False)

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


def confirm(yes: bool, question: str) -> None:
    """Ask unless --yes; refuse (exit 2) when nobody can answer."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise CliError(f"{question} — not confirmed: pass --yes to act without a prompt", USAGE)
    if not typer.confirm(question, default=False, err=True):
        raise CliError("cancelled; nothing was changed", USAGE)


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
