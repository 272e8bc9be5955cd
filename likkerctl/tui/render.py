"""Pure rendering of the dashboard's figures: dicts in, Rich text and table rows out."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.coordinate import Coordinate
from textual.widgets import DataTable

from likkerctl.core import readable, status
from likkerctl.core.disk.figures import Forecast
from likkerctl.core.readable import humanize

if TYPE_CHECKING:  # the backend's types, for annotations only
    from likkerctl.runbooks.engine import RunReport
    from likkerctl.tui.backend import RunbookChoice, RunbookPlan

QUEUE_COLUMNS = ("queue", "ready", "unacked", "in/s", "out/s", "redeliv/s", "cons", "depth")
OFFENDER_COLUMNS = ("actor", "share", "status", "≈ in queue", "redeliveries", "max")
# Lag before the rest: on a narrow terminal it is the figure that says whether takers keep up.
TAKER_COLUMNS = ("taker", "state", "lag", "policy", "rate/s", "processed")
SPARKS = "▁▂▃▄▅▆▇█"
# How a level of urgency (likkerctl.core.readable.Level) looks on the dashboard.
LEVEL_STYLE = {"critical": "bold white on red", "warning": "bold yellow", "ok": "green"}

Row = tuple[str, Sequence[str | Text]]

HELP = """\
# likkerctl dashboard

Every panel refreshes on its own; a server that is slow or down marks only its panels
**stale** or **down** (in the panel's bottom border) while the rest keeps updating.

| key | action |
|---|---|
| `p` / `r` | pause / resume all takers |
| `b` | block the bot selected in *offenders* (the gateway answers it 403) |
| `s` | shovel the selected actor's messages from the actions queue to the DLQ |
| `x` | purge the queue selected in *queues* (archived to a JSON-lines file first) |
| `d` | replay the DLQ into the actions queue |
| `f` | fix: run the runbook of the firing alert (or pick one): every step's dry run, one `y` |
| `a` | the webhook's runs waiting for approval: `y` approves, `x` rejects the selected one |
| `tab` / arrows | move between tables / rows |
| `ctrl+p` | command palette: every action by name |
| `?` | this help; `q` quits |

Under the `requeue` policy the takers hold up to their prefetch of the cycling messages;
pause them (`p`) before shovelling (`s`), then resume (`r`).

Every action shows its dry run first (what, how many, which engine) and does nothing until
you press `y`. It runs the same code as the CLI command and is written to the audit log.
`f` runs a whole runbook the same way: the webhook's engine and steps, every step's dry run
listed first, one confirmation, then each step's progress; its audit rows go under the
alert's key, beside the webhook's, with mode `manual`.

*Offenders* comes from sampling the actions queue (500 messages every 15 s by default):
sampling takes the messages and returns them at once, so each is marked redelivered and
goes back to the tail of a quorum queue.
"""


def fill_table(table: DataTable[Any], rows: Sequence[Row], key: int = 0) -> None:
    """Show `rows` (key, cells), updating in place when the keys are unchanged; keep the
    cursor on the same key."""
    keys = [k for k, _ in rows]
    current = [str(rk.value) for rk in table.rows]
    if keys == current:
        for r, (_, cells) in enumerate(rows):
            for c, value in enumerate(cells):
                table.update_cell_at(Coordinate(r, c), value)
        return
    selected = current[table.cursor_row] if current and table.cursor_row < len(current) else None
    table.clear()
    for k, cells in rows:
        table.add_row(*cells, key=k)
    if selected in keys:
        table.move_cursor(row=keys.index(selected))


def sparkline(values: Sequence[int] | deque[int], width: int = 12) -> str:
    vals = list(values)[-width:]
    if not vals:
        return ""
    top = max(vals)
    if top == 0:
        return SPARKS[0] * len(vals)
    return "".join(SPARKS[min(len(SPARKS) - 1, int(v / top * (len(SPARKS) - 1)))] for v in vals)


def queue_rows(queues: list[dict[str, Any]], history: Mapping[str, deque[int]]) -> list[Row]:
    rows: list[Row] = []
    for q in queues:
        redeliver = float(q.get("redeliver_rate", 0.0))
        hot = status.redeliveries_hot(q)
        rep = q.get("replicas")
        name: str | Text = q["name"]
        if status.replicas_degraded(rep):  # a member down (or a majority: unavailable)
            name = Text.assemble(q["name"], (f" {status.replicas_line(rep)}", "bold red"))
        rows.append(
            (
                q["name"],
                [
                    name,
                    f"{q['ready']:,}",
                    f"{q['unacked']:,}",
                    readable.count(q["publish_rate"]),
                    readable.count(q["deliver_rate"]),
                    Text(readable.count(redeliver), style="bold red" if hot else ""),
                    Text(str(q["consumers"]), style="bold red" if q["consumers"] == 0 else ""),
                    sparkline(history.get(q["name"], ())),
                ],
            )
        )
    return rows


def forecast_text(fc: Forecast | None) -> Text:
    if fc is None:
        return Text("no disk figures from any node", style="yellow")
    if fc.status == "filling":
        eta = fc.eta_s or 0.0
        style = LEVEL_STYLE[readable.eta_level(eta)]
        text = Text.assemble(("FULL IN ~" + humanize(eta), style))
        text.append(f"  ({readable.eta_range(fc.eta_low_s, fc.eta_high_s)})")
        text.append(f"\n{readable.falling(fc.rate)}")
        return text
    if fc.status == "at limit":
        return Text("AT THE LIMIT: publishers blocked", style="bold white on red")
    if fc.status == "not filling":
        return Text.assemble(("not filling", "green"), f"  ({fc.note})")
    return Text.assemble(("not enough data", "yellow"), f"  ({fc.note})")


def disk_text(nodes: list[dict[str, Any]] | None, forecast: dict[str, Any] | None) -> Text:
    text = Text()
    for n in nodes or []:
        if not n.get("running", True):
            text.append(f"{n['name']}: DOWN\n", style="bold white on red")
            continue
        alarms = [a for a in ("disk", "mem") if n.get(f"{a}_alarm")]
        headroom = n.get("disk_headroom")
        style = "bold red" if headroom is not None and headroom < 200e6 else "bold"
        text.append("headroom ")
        text.append(readable.mb(headroom), style=style)
        text.append(f" on {n['name']}\n", style="dim")
        text.append(
            f"free {readable.mb(n['disk_free'])}, limit {readable.mb(n['disk_free_limit'])}",
            style="dim",
        )
        if alarms:
            text.append(f"  ALARM: {', '.join(alarms)}", style="bold white on red")
        text.append("\n")
    if forecast and forecast.get("answer"):
        fc = Forecast.from_json(forecast["answer"])
        # Who writes the log comes right after the answer: the panel shows what fits.
        said, *rest = forecast_text(fc).split("\n")
        text.append_text(said)
        for line in [*writer_lines(forecast), *rest]:
            text.append("\n")
            text.append_text(line)
        regime = readable.regime(fc.regime_reason, fc.regime_since)
        text.append(
            f"\nTheil-Sen, {fc.points} pts/{fc.window_s:,.0f}s, {forecast['source']}"
            + (f", {regime}" if regime else ""),
            style="dim",
        )
        if forecast.get("fallback_reason"):  # asked Prometheus first, and it failed
            text.append(f"\n{forecast['fallback_reason']}: sampler instead", style="yellow")
    elif forecast is not None:
        text.append_text(forecast_text(None))
    return text


def writer_lines(forecast: dict[str, Any]) -> list[Text]:
    """The busiest writer of the broker's log; nothing when the forecast has no writers
    (a recording made before they were read)."""
    if "writers" not in forecast:
        return []
    rows = forecast["writers"]
    if not rows:
        return [Text(f"log writers: {forecast.get('writers_note') or 'none found'}", style="dim")]
    top = rows[0]
    text = Text("top log writer ", style="dim")
    text.append(readable.writer(top), style="bold red" if top["share"] > 0.5 else "bold")
    return [text]


def redelivery_text(
    queues: list[dict[str, Any]] | None, offenders: dict[str, Any] | None, backend: Any
) -> Text:
    text = Text()
    name = backend.profile.actions_queue
    q = next((q for q in queues or [] if q["name"] == name), None)
    if q is not None:
        share = q.get("redeliver_share")
        hot = status.share_hot(share)
        text.append(f"{q['redeliver_rate']:,.0f}/s", style="bold red" if hot else "bold")
        text.append(" redelivered")
        if share is not None:
            text.append(f", {share:.0%} of deliveries", style="bold red" if hot else "")
        text.append("\n")
    if offenders:
        hist = offenders.get("histogram") or {}
        total = sum(hist.values()) or 1
        text.append("delivery counts:", style="dim")
        for bucket, count in hist.items():
            if count:
                text.append(f" {bucket}:{count / total:.0%}")
        worst = sorted(offenders.get("actors", []), key=lambda r: -r["redeliveries"])[:2]
        if worst and worst[0]["redeliveries"]:
            text.append("\nmost redelivered: ", style="dim")
            text.append(
                ", ".join(f"{r['actor']} {r['redelivery_share']:.0%}" for r in worst), style="bold"
            )
    return text


def offender_rows(offenders: dict[str, Any] | None, bots: dict[str, Any] | None) -> list[Row]:
    rows: list[Row] = []
    for r in (offenders or {}).get("actors", []):
        actor = str(r["actor"])
        status: Text | str = ""
        if actor.startswith("bot:"):
            bot = (bots or {}).get(actor.partition(":")[2])
            if bots is None:
                status = "?"
            elif bot is None:
                status = Text("unknown", style="yellow")
            else:
                status = (
                    Text("BLOCKED", style="bold red")
                    if bot["blocked"]
                    else f"active (user:{bot['user_id']})"
                )
        share = float(r["share"])
        rows.append(
            (
                actor,
                [
                    Text(actor, style="bold red" if share > 0.3 else ""),
                    f"{share:.0%}",
                    status,
                    f"{r['estimated']:,}",
                    f"{r['redeliveries']:,}",
                    f"{r['max_delivery_count']:,}",
                ],
            )
        )
    return rows


def taker_rows(takers: list[dict[str, Any]]) -> list[Row]:
    rows: list[Row] = []
    for t in takers:
        state = str(t.get("state"))
        colour = {"running": "green", "paused": "yellow"}.get(state, "red")
        rows.append(
            (
                str(t["taker_id"]),
                [
                    str(t["taker_id"]),
                    Text(state, style=colour),
                    readable.lag(t.get("lag_s")),
                    str(t.get("retry_policy")),
                    f"{t.get('rate', 0):,.1f}",
                    f"{t.get('processed', 0):,}",
                ],
            )
        )
    return rows


def alerts_text(
    alerts: dict[str, Any] | None,
    waiting: list[dict[str, Any]] | None = None,
    now: float = 0.0,
) -> Text:
    """The webhook's runs waiting for approval (when there are), then the firing alerts."""
    firing = _firing_text(alerts)
    if not waiting:
        return firing
    text = Text()
    for w in waiting:
        text.append(f"run {w['run']} awaits approval", style="bold yellow")
        left = max(0.0, float(w["deadline"]) - now)
        text.append(f"  {w['runbook']}, {humanize(left)} left: a", style="yellow")
        text.append("\n")
    text.append_text(firing)
    return text


def _firing_text(alerts: dict[str, Any] | None) -> Text:
    if alerts is None:
        return Text("")
    if not alerts.get("configured"):
        return Text("no Alertmanager in this profile", style="dim")
    firing = alerts.get("alerts", [])
    if not firing:
        return Text("none firing", style="green")
    text = Text()
    for a in firing:
        text.append(f"{a['name']}", style="bold red")
        if a.get("summary"):
            text.append(f"  {a['summary']}", style="dim")
        text.append("\n")
    return text


# -- runbooks (`f`) and approvals (`a`) ------------------------------------------------------
@dataclass(frozen=True)
class StepRow:
    """One step of a runbook on its screen: planned (a dry run) or done."""

    index: int
    step: str
    status: str  # a step's status, or waiting | running
    summary: str
    dry_run: bool


STEP_MARKS = {
    "ok": ("✓", "green"),
    "skipped": ("-", "dim"),
    "stop": ("■", "yellow"),
    "escalate": ("!", "bold yellow"),
    "failed": ("✗", "bold red"),
    "running": ("▶", "bold yellow"),
    "waiting": ("·", "dim"),
}


def runbook_steps(rows: Mapping[int, StepRow]) -> Text:
    """Each step on one line, in order: mark, name, what it would do or did."""
    text = Text(no_wrap=True, overflow="ellipsis")
    for n, index in enumerate(sorted(rows)):
        row = rows[index]
        mark, style = STEP_MARKS.get(row.status, ("?", "red"))
        if n:
            text.append("\n")
        text.append(f"{index + 1:>2}. ")
        text.append(f"{mark} ", style=style)
        text.append(f"{row.step:<16} ", style="bold" if row.status != "skipped" else "dim")
        text.append(row.summary, style="dim" if row.status in ("skipped", "waiting") else "")
    return text


def runbook_title(choice: RunbookChoice) -> Text:
    text = Text.assemble(("Runbook ", "bold"), (choice.runbook, "bold"))
    if choice.alert.fingerprint != "manual":
        text.append(f" for {choice.alert.name}", style="bold")
        text.append(f"\nalert {choice.alert.key}", style="dim")
    row = choice.webhook_run
    if row:
        text.append(
            f"\nthe webhook has it as run {row['id']} ({row['mode']} mode: {row['outcome']})",
            style="dim",
        )
    return text


def plan_status(planned: RunbookPlan) -> Text:
    report = planned.report
    steps = sum(1 for s in report.steps if s.status != "skipped")
    text = Text()
    if report.needs_a_human:
        text.append(f"The plan {report.outcome}: ", style="bold yellow")
        text.append(f"{planned.state.get('escalation', '')}\n")
    text.append("Dry run of each step above: nothing has been changed yet. ")
    text.append("y", style="bold")
    text.append(f" runs them ({steps} to act, mode manual, audited under the alert), ")
    text.append("esc", style="bold")
    text.append(" cancels.")
    return text


def run_status(report: RunReport) -> Text:
    colour = {"ok": "green", "stopped": "green"}.get(report.outcome, "red")
    text = Text.assemble(
        ("runbook ", "bold"), (f"{report.runbook}: {report.outcome}", f"bold {colour}")
    )
    failed = [s for s in report.steps if s.status in ("failed", "escalate")]
    if failed:
        text.append(f"\n{failed[0].step}: {failed[0].summary}", style=colour)
    return text


APPROVAL_COLUMNS = ("run", "runbook", "alert", "left")


def approval_rows(waiting: list[dict[str, Any]], now: float) -> list[Row]:
    return [
        (
            str(w["run"]),
            [
                str(w["run"]),
                w["runbook"],
                w["alertname"],
                humanize(max(0.0, float(w["deadline"]) - now)),
            ],
        )
        for w in waiting
    ]


def approval_plan(w: dict[str, Any]) -> Text:
    """A waiting run's plan: every step's dry run, as the webhook recorded it."""
    rows = {
        s["index"]: StepRow(s["index"], s["step"], s["status"], s["summary"], True)
        for s in w["plan"].get("steps", [])
    }
    text = Text(f"Plan of run {w['run']} ({w['alert']}):\n", style="bold", no_wrap=True)
    text.append_text(runbook_steps(rows))
    return text


def _clock(iso: str | None) -> str:
    if not iso:
        return "--:--:--"
    return datetime.fromisoformat(iso).astimezone().strftime("%H:%M:%S")


def audit_text(entries: list[dict[str, Any]] | None) -> Text:
    text = Text(no_wrap=True, overflow="ellipsis")
    for e in entries or []:
        colour = {"ok": "green", "running": "yellow"}.get(e["result"], "red")
        text.append(f"{_clock(e['started_at'])} ")
        text.append(f"{e['result']:<6} ", style=colour)
        text.append(f"{e['command']}{' (dry run)' if e['dry_run'] else ''} ")
        params = " ".join(f"{k}={v}" for k, v in (e.get("params") or {}).items())
        text.append(params, style="dim")
        text.append("\n")
    if not entries:
        text.append("nothing done yet", style="dim")
    return text


def plan_text(plan: dict[str, Any]) -> Text:
    text = Text("Dry run: ", style="bold")
    text.append(str(plan.get("summary", "")))
    details = {
        k: plan[k]
        for k in ("engine_reason", "messages_in_source", "would_change", "archive")
        if plan.get(k) not in (None, "", [])
    }
    for k, v in details.items():
        text.append(f"\n  {k.replace('_', ' ')}: {', '.join(v) if isinstance(v, list) else v}")
    return text


def offenders_note(offenders: dict[str, Any] | None, bots_error: str | None) -> str:
    """The offenders panel's subtitle while its sample is fresh."""
    if bots_error and not bots_error.startswith("not configured"):
        return f"[yellow]auth: {bots_error}[/]"
    if offenders:
        note = f"{offenders['sampled']:,} of {offenders['depth']:,} sampled"
        if offenders.get("by") or offenders.get("picked"):
            # Not the contract's actors of the actions queue: say what is ranked, and where.
            note += f" of {offenders['queue']} by {offenders.get('by', 'actor')}"
        return note
    return ""
