"""`likkerctl takers status|pause|resume`: the actions takers, over the control exchange."""

from __future__ import annotations

from typing import Annotated

import typer

from likkerctl.cli.output import DryRun, JsonOut, Yes, perform, show, state
from likkerctl.cli.tables import takers_table
from likkerctl.core import operations
from likkerctl.core.clients import control

takers_app = typer.Typer(help="The actions takers, over the control exchange.")
TakerId = Annotated[str | None, typer.Option("--id", help="One taker [default: all]")]


@takers_app.command("status")
def takers_status(ctx: typer.Context, taker_id: TakerId = None, json_out: JsonOut = False) -> None:
    """Each taker's state (running/paused), rate, processed count and failures."""
    rows = control.command(state(ctx).profile, "status", taker_id or "*")
    show(json_out, {"takers": rows}, takers_table(rows))


def _takers_verb(
    ctx: typer.Context, verb: str, taker_id: str | None, dry_run: bool, yes: bool, json_out: bool
) -> None:
    result = perform(ctx, operations.TakersCommand(verb, taker_id or "*"), dry_run, yes, json_out)
    if result is None:
        return
    show(json_out, {"command": verb, "takers": result["takers"]}, takers_table(result["takers"]))
    operations.raise_for(result)


@takers_app.command("pause")
def takers_pause(
    ctx: typer.Context,
    taker_id: TakerId = None,
    dry_run: DryRun = False,
    yes: Yes = False,
    json_out: JsonOut = False,
) -> None:
    """Pause takers: they cancel their consumers; messages wait in the queue."""
    _takers_verb(ctx, "pause", taker_id, dry_run, yes, json_out)


@takers_app.command("resume")
def takers_resume(
    ctx: typer.Context,
    taker_id: TakerId = None,
    dry_run: DryRun = False,
    yes: Yes = False,
    json_out: JsonOut = False,
) -> None:
    """Resume paused takers."""
    _takers_verb(ctx, "resume", taker_id, dry_run, yes, json_out)
