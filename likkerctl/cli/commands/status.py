"""`likkerctl status`: queues, broker disk and alarms, forecast, takers and alerts at a glance."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from likkerctl.cli.output import JsonOut, out, show, state
from likkerctl.cli.tables import forecast_line, takers_table, top_writer_line
from likkerctl.core import readable, status
from likkerctl.core.readings import LiveReadings, collect_status


def status_cmd(
    ctx: typer.Context,
    all_queues: Annotated[
        bool, typer.Option("--all", help="Include exclusive and auto-delete queues.")
    ] = False,
    json_out: JsonOut = False,
) -> None:
    """Queues (every queue of the vhost, ranked by trouble: redeliveries, growth, no
    consumers), broker disk and alarms, takers and firing alerts at a glance."""
    app_state = state(ctx)
    readings = app_state.readings or LiveReadings(app_state.profile, all_queues=all_queues)
    data = collect_status(readings)
    if json_out:
        show(True, data)
        return
    writer = top_writer_line(data["forecast"])
    show(
        False,
        data,
        nodes_table(data["nodes"]),
        f"disk forecast{_source(data['forecast'])}: {forecast_line(data['forecast'])}",
        *([writer] if writer else []),
        queues_table(status.by_trouble(data["queues"])),
        takers_table(data["takers"], data.get("error")),
    )
    am = data["alertmanager"]
    if am.get("error"):
        out.print(f"alerts: [yellow]{am['error']}[/]")
    elif am["configured"]:
        firing = am["alerts"]
        out.print(
            "alerts: "
            + (", ".join(f"[red]{a['name']}[/]" for a in firing) if firing else "none firing")
        )


def _source(fc: dict[str, Any]) -> str:
    return "" if fc.get("error") else f" ({fc['source']})"


def nodes_table(nodes: list[dict[str, Any]]) -> Table:
    table = Table(title="broker nodes", title_justify="left")
    for col in ("node", "state", "disk free", "limit", "headroom", "alarms"):
        table.add_column(col)
    for n in nodes:
        alarms = ", ".join(a for a in ("disk", "mem") if n[f"{a}_alarm"]) or "none"
        if not n.get("running", True):  # listed by its cluster, but no figures: not `?`
            table.add_row(n["name"], "[bold red]DOWN[/]", "-", "-", "-", "-")
            continue
        table.add_row(
            n["name"],
            "running",
            readable.mb(n["disk_free"]),
            readable.mb(n["disk_free_limit"]),
            readable.mb(n["disk_headroom"]),
            f"[red]{alarms}[/]" if alarms != "none" else alarms,
        )
    return table


def queues_table(queues: list[dict[str, Any]]) -> Table:
    table = Table(title="queues", title_justify="left")
    for col in ("queue", "ready", "unacked", "bytes", "in/s", "out/s", "ack/s", "redeliver/s"):
        table.add_column(col, justify="left" if col == "queue" else "right")
    table.add_column("consumers", justify="right")
    replicated = [q for q in queues if q.get("replicas")]
    if replicated:
        table.add_column("replicas")
        table.add_column("leader")
    table.add_column("trouble")
    for q in queues:
        redeliver = readable.count(q["redeliver_rate"])
        rep = q.get("replicas")
        extra = []
        if replicated:
            line = status.replicas_line(rep)
            extra = [
                f"[bold red]{line}[/]" if status.replicas_degraded(rep) else line,
                (rep or {}).get("leader") or "",
            ]
        table.add_row(
            q["name"],
            f"{q['ready']:,}",
            f"{q['unacked']:,}",
            readable.mb(q["bytes"]),
            readable.count(q["publish_rate"]),
            readable.count(q["deliver_rate"]),
            readable.count(q["ack_rate"]),
            f"[red]{redeliver}[/]" if status.redeliveries_hot(q) else redeliver,
            str(q["consumers"]),
            *extra,
            "[red]" + "; ".join(status.trouble(q)[1]) + "[/]",
        )
    return table
