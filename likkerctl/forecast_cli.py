"""`likkerctl forecast`: when does the broker stop accepting likes, and are likes cycling?"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from likkerctl import rabbit, sample
from likkerctl.ops_cli import queue_row
from likkerctl.profile import Profile
from likkerctl.ui import JsonOut, emit_json, out, state

if TYPE_CHECKING:
    from likkerctl.forecast import Forecast

# numpy (the fit) and SQLAlchemy (the sampler) are imported when a forecast is made, not
# when the CLI starts: every other command would pay for them.


def redelivery_signals(profile: Profile, sample_size: int = 0) -> dict[str, Any]:
    """Redeliveries/s and their share of deliveries on the actions queue (+ counts sampled)."""
    row = queue_row(rabbit.Management(profile).queue(profile.actions_queue))
    signals: dict[str, Any] = {
        "queue": profile.actions_queue,
        "redeliver_rate": row["redeliver_rate"],
        "deliver_rate": row["deliver_rate"],
        "redeliver_share": row["redeliver_share"],
    }
    if sample_size:
        msgs = sample.sample(profile, profile.actions_queue, sample_size)
        signals["sampled"] = len(msgs)
        signals["delivery_counts"] = sample.delivery_histogram(msgs)
    return signals


def _rate(bytes_per_s: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if bytes_per_s >= size:
            return f"{bytes_per_s / size:,.1f} {unit}/s"
    return f"{bytes_per_s:,.0f} B/s"


def describe(fc: Forecast | None) -> str:
    from likkerctl.forecast import humanize

    if fc is None:
        return "[yellow]no disk figures from any node[/]"
    headroom = f"headroom {fc.headroom / 1e6:,.0f} MB" if fc.headroom is not None else ""
    if fc.status == "filling":
        colour = (
            "red" if (fc.eta_s or 0) < 3600 else "yellow" if (fc.eta_s or 0) < 86400 else "green"
        )
        return (
            f"[{colour}]filling: the broker blocks publishers in ~{humanize(fc.eta_s)}[/] "
            f"(between {humanize(fc.eta_low_s)} and {humanize(fc.eta_high_s)}, "
            f"{fc.confidence:.0%} interval); {headroom}, falling {_rate(-(fc.rate or 0))}"
        )
    if fc.status == "at limit":
        return f"[red bold]at the limit: the broker is blocking publishers[/] ({headroom})"
    if fc.status == "not filling":
        return f"[green]not filling[/] ({headroom}; {fc.note})"
    return f"[yellow]not enough data[/] ({fc.note})"


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
    """When free disk reaches the broker's disk_free_limit (and publishers are blocked).

    The fit, its window and method are shown; "not filling" when that is the truth, "not
    enough data" when the samples cannot say. Without Prometheus, likkerctl's own sampler
    polls the management API and keeps the samples (use --watch to collect them).
    """
    from likkerctl import disk

    profile = state(ctx).profile
    while True:
        result = disk.forecast_all(profile, source, window)
        signals = redelivery_signals(profile, sample_size)
        if json_out:
            emit_json({**result.as_json(), "redeliveries": signals})
        else:
            answer = result.answer
            out.print(f"disk: {describe(answer)}")
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
