"""`likkerctl forecast`: when does the broker stop accepting likes, and are likes cycling?"""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from likkerctl.cli.output import JsonOut, emit_json, out, state
from likkerctl.cli.tables import describe_forecast, writers_lines
from likkerctl.core import status
from likkerctl.core.messages import sampling
from likkerctl.core.profile import Profile


def redelivery_signals(profile: Profile, sample_size: int = 0) -> dict[str, Any]:
    """The actions queue's redelivery figures, plus delivery counts of N sampled messages."""
    signals = status.redelivery_signals(profile)
    if sample_size:
        msgs = sampling.sample(profile, profile.actions_queue, sample_size)
        signals["sampled"] = len(msgs)
        signals["delivery_counts"] = sampling.delivery_histogram(msgs)
    return signals


def forecast_cmd(
    ctx: typer.Context,
    source: Annotated[
        str,
        typer.Option(help="auto (Prometheus if configured and answering), prometheus, sampler."),
    ] = "auto",
    window: Annotated[float, typer.Option(min=30, help="Seconds of history to fit.")] = 600.0,
    sample_size: Annotated[
        int,
        typer.Option(
            "--sample",
            min=0,
            max=10_000,
            help="Also sample N messages of the actions queue for their delivery counts "
            "(sampling returns them at once; see `likkerctl peek --help`).",
        ),
    ] = 0,
    watch: Annotated[
        float,
        typer.Option(
            min=0, help="Keep sampling every N seconds and print each forecast (0: once)."
        ),
    ] = 0.0,
    json_out: JsonOut = False,
) -> None:
    """When free disk reaches the broker's disk_free_limit (and publishers are blocked), and
    which queues write the broker's log.

    The fit, its window and method are shown, and where it begins (after a step up or a
    change of slope: a fix, an incident); "not filling" when that is the truth (a WAL
    saw-tooth is bounded), "not enough data" when the samples cannot say. Without
    Prometheus, likkerctl's own sampler polls the management API and keeps the samples (use
    --watch to collect them), and the log writers are the management API's rates.
    """
    from likkerctl.core.disk import sources  # numpy: only when a forecast is made

    profile = state(ctx).profile
    while True:
        result = sources.forecast_all(profile, source, window)
        signals = redelivery_signals(profile, sample_size)
        if json_out:
            emit_json({**result.as_json(), "redeliveries": signals})
        else:
            answer = result.answer
            out.print(f"disk: {describe_forecast(answer)}")
            for name, fc in result.nodes.items():
                out.print(
                    f"  {name}: {fc.points} samples over {fc.window_s:,.0f}s"
                    + (" (cut at a step up)" if fc.step_cut else "")
                    + f"; {fc.method}"
                )
            out.print(
                f"  source: {result.source}"
                + (f" ({result.fallback_reason})" if result.fallback_reason else "")
            )
            for line in writers_lines(result.as_json()):
                out.print(line)
            share = signals["redeliver_share"]
            out.print(
                f"redeliveries on {signals['queue']}: {signals['redeliver_rate']:,.0f}/s, "
                f"{share:.0%} of deliveries"
                if share is not None
                else f"redeliveries on {signals['queue']}: {signals['redeliver_rate']:,.0f}/s"
            )
            if "delivery_counts" in signals:
                counts = ", ".join(f"{k}: {v}" for k, v in signals["delivery_counts"].items())
                out.print(f"  delivery counts in {signals['sampled']} sampled: {counts}")
        if not watch:
            return
        try:
            time.sleep(watch)
        except KeyboardInterrupt:
            return
