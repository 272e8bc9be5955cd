"""`likkerctl dashboard`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from likkerctl.cli.output import out, state
from likkerctl.core.readings import record as record_parts


def dashboard(
    ctx: typer.Context,
    refresh: Annotated[
        float, typer.Option(min=0.5, help="Seconds between refreshes of each panel.")
    ] = 2.0,
    sample_every: Annotated[
        float,
        typer.Option(
            min=0,
            help="Seconds between samples of the actions queue for the offenders panel "
            "(sampling redelivers what it reads; 0: never).",
        ),
    ] = 15.0,
    sample_size: Annotated[
        int, typer.Option("--sample", min=1, max=10_000, help="Messages per sample.")
    ] = 500,
    record: Annotated[
        Path | None,
        typer.Option(help="Fetch every panel once, write the figures to FILE and exit."),
    ] = None,
    replay: Annotated[
        Path | None,
        typer.Option(help="Show a recording made with --record instead of live servers."),
    ] = None,
    runbooks: Annotated[
        Path | None,
        typer.Option(
            help="Runbook file for `f` (the webhook's, to run what it would). Default: the "
            "built-in runbooks.",
            show_default=False,
        ),
    ] = None,
    offenders_by: Annotated[
        str,
        typer.Option(
            "--offenders-by",
            help="Field the offenders panel ranks: actor, header.NAME, body.PATH, a property "
            "or an alias.",
        ),
    ] = "actor",
    offenders_queue: Annotated[
        str | None,
        typer.Option(
            "--offenders-queue", help="Queue the offenders panel samples [default: actions queue]"
        ),
    ] = None,
) -> None:
    """The live incident dashboard: queues, disk forecast, redeliveries, offenders, takers,
    alerts and the audit log, with every action one key away (previewed, then confirmed).

    `f` runs the runbook of the firing alert (every step's dry run, one confirmation);
    `a` approves or rejects the webhook's runs waiting for approval. Press ? inside for the
    keys; ctrl+p lists every action.
    """
    # Textual: only for this command, not at every start of the CLI.
    from likkerctl.tui.app import Dashboard
    from likkerctl.tui.backend import LiveBackend, RecordedBackend

    if replay is not None:
        backend: LiveBackend | RecordedBackend = RecordedBackend.load(replay)
        refresh = 0.0
    else:
        if runbooks is not None:
            from likkerctl.plugins.runbooks import load_runbooks  # checks the file now

            load_runbooks(runbooks)  # a bad file fails here, not on `f`
        backend = LiveBackend(
            state(ctx).profile,
            sample_size,
            runbooks=runbooks,
            offenders_by=offenders_by,
            offenders_queue=offenders_queue,
        )
    if record is not None:
        data = record_parts(backend, record)
        failed = [p for p, v in data["parts"].items() if "error" in v]
        out.print(f"recorded {len(data['parts'])} parts to {record}; failing: {failed or 'none'}")
        return
    if sample_every == 0:
        sample_every = float("inf")
    Dashboard(backend, refresh_s=refresh, sample_every_s=sample_every).run()
