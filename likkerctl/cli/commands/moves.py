"""`shovel`, `purge` and `dlq list|replay`: lossless moves out of a queue, and dead letters.

Each mutating command has `--dry-run`, asks before acting unless `--yes`, and writes the
audit log (through `likkerctl.core.operations`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from likkerctl.cli.output import DryRun, JsonOut, Where, Yes, perform, show, state
from likkerctl.core import operations, status
from likkerctl.core.errors import Interrupted, InvalidInput
from likkerctl.core.messages import sampling
from likkerctl.core.messages.archive import default_archive_path

Engine = Annotated[
    str,
    typer.Option(
        help="auto: the broker's shovel plugin when the predicate is on headers (or absent), "
        "else likkerctl itself; broker or client to force one."
    ),
]


def _report_move(result: dict[str, Any] | None, json_out: bool) -> None:
    if result is None:
        return
    lines = [result["summary"], *(f"note: {note}" for note in result.get("notes", []))]
    if result.get("returned"):
        lines.append(f"{result['returned']} message(s) read past the bound went back to the source")
    show(json_out, result, *lines)
    operations.raise_for(result)
    if result.get("interrupted"):
        raise Interrupted("interrupted; every message not moved is still in the source")


def shovel(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="Queue to take messages from.")],
    destination: Annotated[str, typer.Argument(help="Queue to put them in (must exist).")],
    where: Where = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Move at most N messages.")] = None,
    engine: Engine = "auto",
    dry_run: DryRun = False,
    yes: Yes = False,
    json_out: JsonOut = False,
) -> None:
    """Move messages losslessly from SOURCE to DESTINATION, all or those matching --where.

    Nothing is acked at the source before its copy is confirmed at the destination; the
    run covers the messages present when it starts; interrupting it (Ctrl-C, even kill -9)
    loses nothing, and running it again carries on. Non-matching messages go back to the
    tail of SOURCE.
    """
    aliases = state(ctx).profile.aliases
    op = operations.QueueMove(source, destination, where, limit, engine, aliases=aliases)
    _report_move(perform(ctx, op, dry_run, yes, json_out, "moving"), json_out)


def purge(
    ctx: typer.Context,
    queue: Annotated[str, typer.Argument(help="Queue to delete messages from.")],
    where: Where = None,
    no_archive: Annotated[
        bool, typer.Option("--no-archive", help="Delete without keeping a copy.")
    ] = False,
    archive: Annotated[
        Path | None,
        typer.Option(help="Archive file (JSON lines) [default: <state dir>/archive/...]"),
    ] = None,
    dry_run: DryRun = False,
    yes: Yes = False,
    json_out: JsonOut = False,
) -> None:
    """Delete messages from QUEUE (all, or those matching --where), archiving them first.

    The archive is a JSON-lines file, fsynced before each message is acked, so nothing is
    deleted that is not archived. With --no-archive and no --where it is the broker's own
    purge.
    """
    profile = state(ctx).profile
    if no_archive and archive is not None:
        raise InvalidInput("--archive and --no-archive contradict each other")
    path = None if no_archive else (archive or default_archive_path(profile.state_path, queue))
    op = operations.Purge(queue, where, path, aliases=profile.aliases)
    _report_move(perform(ctx, op, dry_run, yes, json_out, "deleting"), json_out)


# -- dlq ----------------------------------------------------------------------------
dlq_app = typer.Typer(help="Inspect and replay dead letters.", no_args_is_help=True)


@dlq_app.command("list")
def dlq_list(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="Messages to read.")] = 10_000,
    json_out: JsonOut = False,
) -> None:
    """Group dead letters by reason and actor; `operator` for messages an operator moved.

    Reads them the way `peek` does (in place when likkerctl reaches the node).
    """
    profile = state(ctx).profile
    msgs = sampling.sample(profile, profile.dlq, limit)
    depth = status.queue_depth(profile, profile.dlq)
    groups = sampling.dead_letter_groups(msgs)
    table = Table(title=f"{profile.dlq}: {len(msgs):,} dead letter(s) read", title_justify="left")
    for col in ("reason", "actor", "messages"):
        table.add_column(col)
    for g in groups["groups"]:
        table.add_row(g["reason"], g["actor"], f"{g['messages']:,}")
    show(json_out, {"queue": profile.dlq, "depth": depth, "read": len(msgs), **groups}, table)


@dlq_app.command("replay")
def dlq_replay(
    ctx: typer.Context,
    where: Where = None,
    to: Annotated[
        str | None,
        typer.Option(
            help="Queue to replay into, or `original`: each message back to the queue it "
            "came from (its x-death, or likkerctl's marker for moved ones) [default: the "
            "actions queue]"
        ),
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1)] = None,
    engine: Engine = "auto",
    dry_run: DryRun = False,
    yes: Yes = False,
    json_out: JsonOut = False,
) -> None:
    """Move dead letters back (all, or those matching --where), losslessly.

    Headers are kept, including likker-failure and x-death, so a replayed message's history
    stays visible. Select with e.g. --where reason=retries-exhausted or reason=operator.
    """
    profile = state(ctx).profile
    destination = to or profile.actions_queue
    op = operations.QueueMove(
        profile.dlq, destination, where, limit, engine, "dlq replay", aliases=profile.aliases
    )
    _report_move(perform(ctx, op, dry_run, yes, json_out, "replaying"), json_out)
