"""Rich renderings that several commands print: the forecast's sentence, the queues that
write the broker's log, the takers table."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from likkerctl.cli.output import styled
from likkerctl.core import readable
from likkerctl.core.disk.figures import Forecast


def describe_forecast(fc: Forecast | None) -> str:
    """The disk forecast in one sentence, coloured by urgency."""
    if fc is None:
        return "[yellow]no disk figures from any node[/]"
    headroom = f"headroom {readable.mb(fc.headroom)}" if fc.headroom is not None else ""
    regime = readable.regime(fc.regime_reason, fc.regime_since)
    since = f"; {regime}" if regime else ""
    if fc.status == "filling":
        level = readable.eta_level(fc.eta_s)
        return (
            styled(
                f"filling: the broker blocks publishers in ~{readable.humanize(fc.eta_s)}", level
            )
            + f" ({readable.eta_range(fc.eta_low_s, fc.eta_high_s)}, "
            f"{fc.confidence:.0%} interval); {headroom}, {readable.falling(fc.rate)}{since}"
        )
    if fc.status == "at limit":
        return f"[red bold]at the limit: the broker is blocking publishers[/] ({headroom})"
    if fc.status == "not filling":
        return f"[green]not filling[/] ({headroom}; {fc.note}{since})"
    return f"[yellow]not enough data[/] ({fc.note})"


def forecast_line(document: dict[str, Any]) -> str:
    """A forecast document (`status --json`'s "forecast") in one line, or its error."""
    if document.get("error"):
        return f"[yellow]{document['error']}[/]"
    answer = document.get("answer")
    return describe_forecast(Forecast.from_json(answer) if answer else None)


def writers_lines(document: dict[str, Any], per_node: int = 3) -> list[str]:
    """The queues writing each node's log, busiest first (a forecast document's "writers");
    nothing when the document has none (made without them, or by an older likkerctl)."""
    if "writers" not in document:
        return []
    rows = document["writers"]
    note = document.get("writers_note")
    if not rows:
        return [f"log writers: [yellow]{note or 'none found'}[/]"]
    lines = [f"log writers ({rows[0]['source']}):"]
    nodes: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        nodes.setdefault(row["node"], []).append(row)
    for node, on_node in nodes.items():
        shown = ", ".join(readable.writer(r) for r in on_node[:per_node])
        lines.append(f"  {node}: {shown}")
    if note:
        lines.append(f"  [dim]{note}[/]")
    return lines


def top_writer_line(document: dict[str, Any]) -> str | None:
    """The busiest writer of the broker's log in one line (`status`), or None."""
    rows = document.get("writers")
    if rows is None:
        return None
    if not rows:
        return f"log writers: [yellow]{document.get('writers_note') or 'none found'}[/]"
    top = rows[0]
    return f"top log writer ({top['source']}): {readable.writer(top)} on {top['node']}"


def takers_table(rows: list[dict[str, Any]], error: str | None = None) -> Table | str:
    if error:
        return f"takers: [yellow]{error}[/]"
    if not rows:
        return "takers: none answered"
    table = Table(title="takers", title_justify="left")
    for col in ("taker", "state", "policy", "rate/s", "processed", "batch", "store ms", "lag"):
        table.add_column(col)
    table.add_column("failures")
    for t in rows:
        colour = {"running": "green", "paused": "yellow"}.get(t.get("state", ""), "red")
        batch = readable.optional(t.get("batch_size"))
        if t.get("batch_limit") is not None:
            batch += f" / {t['batch_limit']}"
        table.add_row(
            t["taker_id"],
            f"[{colour}]{t.get('state')}[/]",
            str(t.get("retry_policy")),
            f"{t.get('rate', 0):,.1f}",
            f"{t.get('processed', 0):,}",
            batch,
            readable.optional(t.get("store_ms")),
            readable.lag(t.get("lag_s")),
            ", ".join(f"{k} {v}" for k, v in t.get("failures", {}).items()) or "-",
        )
    return table
