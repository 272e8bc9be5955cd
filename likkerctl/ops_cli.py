"""Incident commands: status, peek, top, shovel, purge, dlq, takers, bots, audit, config.

Each is usable by people (tables) and by scripts (`--json`). Each mutating command has
`--dry-run`, asks before acting unless `--yes`, and writes the audit log.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import pika
import pika.exceptions
import requests
import typer
from rich.table import Table

from likkerctl import bots, move, operations, predicate, rabbit, sample, takers
from likkerctl.archive import default_archive_path
from likkerctl.errors import INTERRUPTED, USAGE, CliError
from likkerctl.profile import Profile, config_path
from likkerctl.ui import (
    DryRun,
    JsonOut,
    Where,
    Yes,
    confirm,
    emit_json,
    out,
    progress_bar,
    state,
)

Engine = Annotated[
    str,
    typer.Option(
        help="auto: the broker's shovel plugin when the predicate is on headers (or absent), "
        "else likkerctl itself; broker or client to force one."
    ),
]


# -- status -------------------------------------------------------------------------
def _rate(stats: dict[str, Any], key: str) -> float:
    details = stats.get(f"{key}_details", {})
    return float(details.get("avg_rate", details.get("rate", 0.0)))


def queue_row(qd: dict[str, Any]) -> dict[str, Any]:
    stats = qd.get("message_stats", {})
    return {
        "name": qd["name"],
        "type": qd.get("type"),
        "state": qd.get("state"),
        "messages": qd.get("messages", 0),
        "ready": qd.get("messages_ready", 0),
        "unacked": qd.get("messages_unacknowledged", 0),
        "bytes": qd.get("message_bytes", 0),
        "consumers": qd.get("consumers", 0),
        "publish_rate": _rate(stats, "publish"),
        "deliver_rate": _rate(stats, "deliver_get"),
        "ack_rate": _rate(stats, "ack"),
        "redeliver_rate": _rate(stats, "redeliver"),
        # deliver_get counts redeliveries too: the share of deliveries that are repeats.
        "redeliver_share": (
            round(_rate(stats, "redeliver") / _rate(stats, "deliver_get"), 4)
            if _rate(stats, "deliver_get") > 0
            else None
        ),
    }


def node_row(node: dict[str, Any]) -> dict[str, Any]:
    # A node just booted (or down) has no disk figures yet: say so rather than show zeros.
    known = "disk_free" in node
    free = int(node.get("disk_free", 0))
    limit = int(node.get("disk_free_limit", 0))
    return {
        "name": node["name"],
        "running": bool(node.get("running")),
        "disk_free": free if known else None,
        "disk_free_limit": limit if known else None,
        "disk_headroom": free - limit if known else None,
        "disk_alarm": bool(node.get("disk_free_alarm")),
        "mem_alarm": bool(node.get("mem_alarm")),
        "mem_used": node.get("mem_used"),
        "mem_limit": node.get("mem_limit"),
    }


def firing_alerts(profile: Profile) -> dict[str, Any]:
    if not profile.alertmanager_url:
        return {"configured": False, "alerts": []}
    url = f"{profile.alertmanager_url.rstrip('/')}/api/v2/alerts"
    try:
        resp = requests.get(
            url, params={"active": "true", "silenced": "false", "inhibited": "false"}, timeout=1
        )
        resp.raise_for_status()
        alerts = resp.json()
    except (requests.RequestException, ValueError) as exc:
        return {"configured": True, "error": f"unreachable at {url}: {type(exc).__name__}"}
    return {
        "configured": True,
        "alerts": [
            {
                "name": a.get("labels", {}).get("alertname"),
                "severity": a.get("labels", {}).get("severity"),
                "summary": a.get("annotations", {}).get("summary"),
                "startsAt": a.get("startsAt"),
                "fingerprint": a.get("fingerprint"),
            }
            for a in alerts
        ],
    }


def exact_counts(profile: Profile, rows: list[dict[str, Any]]) -> None:
    """Overwrite ready/consumers of the key queues with AMQP's exact figures.

    The management API's queue objects can lag ten seconds behind a quorum queue (a paused
    fleet still showed its consumers); queue.declare(passive) answers from the queue itself.
    """
    if not rows:
        return
    conn = rabbit.connect(profile)
    try:
        for row in rows:
            try:
                method = conn.channel().queue_declare(row["name"], passive=True).method
            except pika.exceptions.ChannelClosedByBroker:
                continue
            row["ready"] = method.message_count
            row["consumers"] = method.consumer_count
            row["messages"] = row["ready"] + row["unacked"]
    finally:
        if conn.is_open:
            conn.close()


def queue_rows(
    profile: Profile, all_queues: bool = False, mgmt: rabbit.Management | None = None
) -> list[dict[str, Any]]:
    """The vhost's queues as rows: actions queue, DLQ, then by name; exact counts for those two."""
    mgmt = mgmt or rabbit.Management(profile, timeout=3)
    queues = [
        queue_row(qd)
        for qd in mgmt.queues()
        if all_queues or not (qd.get("exclusive") or qd.get("auto_delete"))
    ]
    order = {profile.actions_queue: 0, profile.dlq: 1}
    queues.sort(key=lambda r: (order.get(r["name"], 2), r["name"]))
    exact_counts(profile, [q for q in queues if q["name"] in order])
    return queues


def collect_status(profile: Profile, all_queues: bool = False) -> dict[str, Any]:
    mgmt = rabbit.Management(profile, timeout=3)
    nodes = [node_row(n) for n in mgmt.nodes()]
    queues = queue_rows(profile, all_queues, mgmt)
    try:
        fleet: dict[str, Any] = {"takers": takers.command(profile, "status", timeout=1.0)}
    except CliError as exc:
        fleet = {"takers": [], "error": str(exc)}
    from likkerctl import disk  # numpy: only when status is asked for

    try:
        disk_forecast: dict[str, Any] = disk.forecast_all(profile).as_json()
    except CliError as exc:
        disk_forecast = {"error": str(exc)}
    return {
        "profile": profile.name,
        "management_url": profile.mgmt_url,
        "nodes": nodes,
        "queues": queues,
        **fleet,
        "forecast": disk_forecast,
        "alertmanager": firing_alerts(profile),
    }


def _mb(n: float | None) -> str:
    return "?" if n is None else f"{n / 1e6:,.0f} MB"


def status(
    ctx: typer.Context,
    all_queues: Annotated[
        bool, typer.Option("--all", help="Include exclusive and auto-delete queues.")
    ] = False,
    json_out: JsonOut = False,
) -> None:
    """Queues, broker disk and alarms, takers and firing alerts at a glance."""
    data = collect_status(state(ctx).profile, all_queues)
    if json_out:
        emit_json(data)
        return
    nodes = Table(title="broker nodes", title_justify="left")
    for col in ("node", "disk free", "limit", "headroom", "alarms"):
        nodes.add_column(col)
    for n in data["nodes"]:
        alarms = ", ".join(a for a in ("disk", "mem") if n[f"{a}_alarm"]) or "none"
        nodes.add_row(
            n["name"],
            _mb(n["disk_free"]),
            _mb(n["disk_free_limit"]),
            _mb(n["disk_headroom"]),
            f"[red]{alarms}[/]" if alarms != "none" else alarms,
        )
    out.print(nodes)
    _print_forecast(data["forecast"])
    qt = Table(title="queues", title_justify="left")
    for col in ("queue", "ready", "unacked", "bytes", "in/s", "out/s", "ack/s", "redeliver/s"):
        qt.add_column(col, justify="left" if col == "queue" else "right")
    qt.add_column("consumers", justify="right")
    for q in data["queues"]:
        redeliver = q["redeliver_rate"]
        qt.add_row(
            q["name"],
            f"{q['ready']:,}",
            f"{q['unacked']:,}",
            _mb(q["bytes"]),
            f"{q['publish_rate']:,.0f}",
            f"{q['deliver_rate']:,.0f}",
            f"{q['ack_rate']:,.0f}",
            f"[red]{redeliver:,.0f}[/]"
            if redeliver > max(q["ack_rate"], 1)
            else f"{redeliver:,.0f}",
            str(q["consumers"]),
        )
    out.print(qt)
    _print_takers(data["takers"], data.get("error"))
    am = data["alertmanager"]
    if am.get("error"):
        out.print(f"alerts: [yellow]{am['error']}[/]")
    elif am["configured"]:
        firing = am["alerts"]
        out.print(
            "alerts: "
            + (", ".join(f"[red]{a['name']}[/]" for a in firing) if firing else "none firing")
        )


def _print_forecast(fc: dict[str, Any]) -> None:
    from likkerctl.forecast import Forecast
    from likkerctl.forecast_cli import describe

    if fc.get("error"):
        out.print(f"disk forecast: [yellow]{fc['error']}[/]")
        return
    answer = Forecast.from_json(fc["answer"]) if fc.get("answer") else None
    out.print(f"disk forecast ({fc['source']}): {describe(answer)}")


def _print_takers(rows: list[dict[str, Any]], error: str | None = None) -> None:
    if error:
        out.print(f"takers: [yellow]{error}[/]")
        return
    if not rows:
        out.print("takers: none answered")
        return
    table = Table(title="takers", title_justify="left")
    for col in ("taker", "state", "policy", "rate/s", "processed", "failures"):
        table.add_column(col)
    for t in rows:
        colour = {"running": "green", "paused": "yellow"}.get(t.get("state", ""), "red")
        table.add_row(
            t["taker_id"],
            f"[{colour}]{t.get('state')}[/]",
            str(t.get("retry_policy")),
            f"{t.get('rate', 0):,.1f}",
            f"{t.get('processed', 0):,}",
            ", ".join(f"{k} {v}" for k, v in t.get("failures", {}).items()) or "-",
        )
    out.print(table)


# -- peek and top -------------------------------------------------------------------
SAMPLE_HELP = sample.SAMPLING_EFFECT


def peek(
    ctx: typer.Context,
    queue: Annotated[str, typer.Argument(help="Queue to sample.")],
    count: Annotated[int, typer.Option("-n", "--count", min=1, max=10_000)] = 10,
    json_out: JsonOut = False,
) -> None:
    """Show the first N messages of a queue, without removing them.

    Sampling takes the messages and returns them at once (basic.nack requeue): nothing is
    removed, but each sampled message is marked redelivered, its x-delivery-count rises by
    one, and on a quorum queue it goes back at the tail.
    """
    msgs = sample.sample(state(ctx).profile, queue, count)
    if json_out:
        emit_json({"queue": queue, "count": len(msgs), "messages": [m.as_json() for m in msgs]})
        return
    table = Table(title=f"{queue}: first {len(msgs)} messages", title_justify="left")
    for col in ("message id", "actor", "post", "action", "deliveries", "redelivered", "reason"):
        table.add_column(col)
    for m in msgs:
        table.add_row(
            m.message_id or "-",
            m.actor,
            str(m.post),
            str(m.action),
            str(m.delivery_count),
            "yes" if m.redelivered else "no",
            m.reason if m.reason != "unknown" else "",
        )
    out.print(table)


def top(
    ctx: typer.Context,
    queue: Annotated[str, typer.Argument(help="Queue to sample.")],
    by: Annotated[str, typer.Option(help="bot, user, post, action or actor.")] = "actor",
    sample_size: Annotated[
        int, typer.Option("--sample", min=1, max=50_000, help="Messages to sample.")
    ] = 2000,
    limit: Annotated[int, typer.Option("-n", "--limit", min=1)] = 10,
    json_out: JsonOut = False,
) -> None:
    """Rank actors (or posts, actions) by share of the queue and by redeliveries.

    Works on a sample from the head of the queue. Sampling takes the messages and returns
    them at once (basic.nack requeue): nothing is removed, but each sampled message is marked
    redelivered, its x-delivery-count rises by one, and on a quorum queue it goes back at
    the tail.
    """
    if by not in sample.KEYS:
        raise CliError(f"--by must be one of {', '.join(sample.KEYS)}", USAGE)
    profile = state(ctx).profile
    # Management counts lag a statistics interval; AMQP's ready count is exact.
    depth = max(
        int(rabbit.Management(profile).queue(queue).get("messages", 0)),
        move.ready_count(profile, queue),
    )
    msgs = sample.sample(profile, queue, sample_size)
    rows = sample.top(msgs, by, max(depth, len(msgs)), limit)
    if json_out:
        emit_json(
            {
                "queue": queue,
                "by": by,
                "depth": depth,
                "sampled": len(msgs),
                "delivery_counts": sample.delivery_histogram(msgs),
                "rows": rows,
            }
        )
        return
    table = Table(
        title=f"{queue}: top {by} in a sample of {len(msgs):,} (depth {depth:,})",
        title_justify="left",
    )
    for col in (by, "share", "≈ in queue", "redeliveries", "of all redeliveries", "max deliveries"):
        table.add_column(col, justify="left" if col == by else "right")
    for r in rows:
        table.add_row(
            "-" if r[by] is None else str(r[by]),
            f"{r['share']:.1%}",
            f"{r['estimated']:,}",
            f"{r['redeliveries']:,}",
            f"{r['redelivery_share']:.1%}",
            str(r["max_delivery_count"]),
        )
    out.print(table)


# -- moves --------------------------------------------------------------------------
def _perform(
    ctx: typer.Context,
    op: operations.Operation,
    dry_run: bool,
    yes: bool,
    json_out: bool,
    progress_label: str | None = None,
) -> dict[str, Any] | None:
    """Run `op` for the CLI: dry run printed, or confirmed, executed (with a progress bar)."""
    profile = state(ctx).profile
    with progress_bar(progress_label or "", progress_label is not None and not json_out) as update:

        def on_progress(p: move.Progress) -> None:
            update(p.scanned, p.total, p.rate)

        done = operations.perform(
            profile,
            op,
            dry_run=dry_run,
            confirm=lambda question: confirm(yes, question),
            on_progress=on_progress,
        )
    if done.result is None:
        if json_out:
            emit_json({"dry_run": True, **done.plan})
        else:
            out.print(f"dry run: {done.summary}")
    return done.result


def _report_move(result: dict[str, Any] | None, json_out: bool) -> None:
    if result is None:
        return
    if json_out:
        emit_json(result)
    else:
        out.print(result["summary"])
        for note in result.get("notes", []):
            out.print(f"note: {note}")
        if result.get("returned"):
            out.print(
                f"{result['returned']} message(s) read past the bound went back to the source"
            )
    operations.raise_for(result)
    if result.get("interrupted"):
        raise CliError("interrupted; every message not moved is still in the source", INTERRUPTED)


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
    op = operations.QueueMove(source, destination, where, limit, engine)
    _report_move(_perform(ctx, op, dry_run, yes, json_out, "moving"), json_out)


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
        raise CliError("--archive and --no-archive contradict each other", USAGE)
    path = None if no_archive else (archive or default_archive_path(profile.state_path, queue))
    op = operations.Purge(queue, where, path)
    _report_move(_perform(ctx, op, dry_run, yes, json_out, "deleting"), json_out)


# -- dlq ----------------------------------------------------------------------------
dlq_app = typer.Typer(help="Inspect and replay dead letters.", no_args_is_help=True)


@dlq_app.command("list")
def dlq_list(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="Messages to read.")] = 10_000,
    json_out: JsonOut = False,
) -> None:
    """Group dead letters by reason and actor (reads them and returns them at once)."""
    profile = state(ctx).profile
    msgs = sample.sample(profile, profile.dlq, limit)
    depth = int(rabbit.Management(profile).queue(profile.dlq).get("messages", 0))
    groups = sample.dead_letter_groups(msgs)
    if json_out:
        emit_json({"queue": profile.dlq, "depth": depth, "read": len(msgs), **groups})
        return
    table = Table(title=f"{profile.dlq}: {len(msgs):,} dead letter(s) read", title_justify="left")
    for col in ("reason", "actor", "messages"):
        table.add_column(col)
    for g in groups["groups"]:
        table.add_row(g["reason"], g["actor"], f"{g['messages']:,}")
    out.print(table)


@dlq_app.command("replay")
def dlq_replay(
    ctx: typer.Context,
    where: Where = None,
    to: Annotated[
        str | None, typer.Option(help="Queue to replay into [default: the actions queue]")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1)] = None,
    engine: Engine = "auto",
    dry_run: DryRun = False,
    yes: Yes = False,
    json_out: JsonOut = False,
) -> None:
    """Move dead letters back (all, or those matching --where), losslessly.

    Headers are kept, including likker-failure and x-death, so a replayed message's history
    stays visible. Select with e.g. --where reason=retries-exhausted.
    """
    profile = state(ctx).profile
    destination = to or profile.actions_queue
    op = operations.QueueMove(profile.dlq, destination, where, limit, engine, "dlq replay")
    _report_move(_perform(ctx, op, dry_run, yes, json_out, "replaying"), json_out)


# -- takers -------------------------------------------------------------------------
takers_app = typer.Typer(help="The actions takers, over the control exchange.")
TakerId = Annotated[str | None, typer.Option("--id", help="One taker [default: all]")]


@takers_app.command("status")
def takers_status(ctx: typer.Context, taker_id: TakerId = None, json_out: JsonOut = False) -> None:
    """Each taker's state (running/paused), rate, processed count and failures."""
    rows = takers.command(state(ctx).profile, "status", taker_id or "*")
    if json_out:
        emit_json({"takers": rows})
    else:
        _print_takers(rows)


def _takers_verb(
    ctx: typer.Context, verb: str, taker_id: str | None, dry_run: bool, yes: bool, json_out: bool
) -> None:
    result = _perform(ctx, operations.TakersCommand(verb, taker_id or "*"), dry_run, yes, json_out)
    if result is None:
        return
    if json_out:
        emit_json({"command": verb, "takers": result["takers"]})
    else:
        _print_takers(result["takers"])
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


# -- bots ---------------------------------------------------------------------------
bots_app = typer.Typer(help="Bots, through the auth service's admin API.", no_args_is_help=True)


@bots_app.command("list")
def bots_list(
    ctx: typer.Context,
    blocked: Annotated[
        bool | None, typer.Option("--blocked/--unblocked", help="Only blocked, or unblocked.")
    ] = None,
    json_out: JsonOut = False,
) -> None:
    """Bots with their owner and block status."""
    rows = bots.AuthAdmin(state(ctx).profile).bots(blocked)
    if json_out:
        emit_json({"bots": rows})
        return
    table = Table(title=f"{len(rows)} bot(s)", title_justify="left")
    for col in ("bot", "owner", "name", "blocked", "reason"):
        table.add_column(col)
    for b in rows:
        table.add_row(
            str(b["bot_id"]),
            str(b["user_id"]),
            str(b.get("name") or ""),
            "[red]blocked[/]" if b["blocked"] else "no",
            str(b.get("blocked_reason") or ""),
        )
    out.print(table)


def _bot_verb(
    ctx: typer.Context,
    verb: str,
    bot_id: int,
    reason: str | None,
    dry_run: bool,
    yes: bool,
    json_out: bool,
) -> None:
    result = _perform(ctx, operations.BotCommand(verb, bot_id, reason), dry_run, yes, json_out)
    if result is None:
        return
    if json_out:
        emit_json(result["bot"])
    else:
        out.print(result["summary"])


@bots_app.command("block")
def bots_block(
    ctx: typer.Context,
    bot_id: Annotated[int, typer.Argument(metavar="BOT", help="Bot id.")],
    reason: Annotated[str, typer.Option(help="Why (kept with the block and in the audit).")],
    dry_run: DryRun = False,
    yes: Yes = False,
    json_out: JsonOut = False,
) -> None:
    """Block a bot: the gateway answers it 403 from its next request on."""
    _bot_verb(ctx, "block", bot_id, reason, dry_run, yes, json_out)


@bots_app.command("unblock")
def bots_unblock(
    ctx: typer.Context,
    bot_id: Annotated[int, typer.Argument(metavar="BOT", help="Bot id.")],
    dry_run: DryRun = False,
    yes: Yes = False,
    json_out: JsonOut = False,
) -> None:
    """Lift a bot's block."""
    _bot_verb(ctx, "unblock", bot_id, None, dry_run, yes, json_out)


# -- audit and config ---------------------------------------------------------------
def audit_cmd(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("-n", "--limit", min=1)] = 20,
    command: Annotated[str | None, typer.Option(help="Only this command.")] = None,
    alert: Annotated[
        str | None,
        typer.Option(
            help="Only what the webhook did for this alert (fingerprint:startsAt, as in "
            "`likkerctl webhook log`)."
        ),
    ] = None,
    json_out: JsonOut = False,
) -> None:
    """What was done (and dry-run), when, by whom, with what result."""
    from likkerctl import audit

    rows = audit.entries(state(ctx).profile.audit_url, limit, command, alert)
    if json_out:
        emit_json({"entries": rows})
        return
    table = Table(title="audit log (newest first)", title_justify="left")
    for col in ("when", "who", "command", "params", "result", "counts"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["started_at"][:19].replace("T", " "),
            f"{r['os_user']}@{r['profile']}" + ("\n(webhook)" if r["alert"] else ""),
            r["command"] + (" (dry run)" if r["dry_run"] else ""),
            ", ".join(f"{k}={v}" for k, v in r["params"].items()),
            r["result"] + (f": {r['error']}" if r["error"] else ""),
            _audit_counts(r),
        )
    out.print(table)


def _audit_counts(row: dict[str, Any]) -> str:
    """The figures worth a glance: moved/kept/purged, what a dry run would have done, and
    what a runbook step found."""
    counts = row["counts"]
    bits = [f"{k}={counts[k]}" for k in ("moved", "kept", "purged") if k in counts]
    plan = counts.get("plan")
    if row["dry_run"] and isinstance(plan, dict) and plan.get("summary"):
        bits.append(f"would: {plan['summary']}")
    if isinstance(counts.get("offenders"), list):
        found = ", ".join(str(o.get("actor")) for o in counts["offenders"])
        bits.append(f"offenders: {found or 'none'}")
    if counts.get("outcome"):
        bits.append(f"outcome: {counts['outcome']}")
    return "; ".join(bits)


config_app = typer.Typer(help="Profiles and where they come from.", no_args_is_help=True)


@config_app.command("show")
def config_show(ctx: typer.Context, json_out: JsonOut = False) -> None:
    """The profile in use, with secrets hidden, and where each value came from."""
    profile = state(ctx).profile
    data = {**profile.redacted(), "sources": profile.sources}
    if json_out:
        emit_json(data)
        return
    for key, value in data.items():
        if key != "sources":
            out.print(f"{key:18} {value}")
    out.print(f"{'config file':18} {config_path(os.environ)}")


PREDICATE_HELP = predicate.__doc__ or ""


def help_predicates() -> None:
    """The --where grammar, with examples."""
    out.print(PREDICATE_HELP.strip())


def register(app: typer.Typer) -> None:
    from likkerctl.forecast_cli import forecast_cmd

    app.command()(status)
    app.command("forecast")(forecast_cmd)
    app.command()(peek)
    app.command()(top)
    app.command()(shovel)
    app.command()(purge)
    app.add_typer(dlq_app, name="dlq")
    app.add_typer(takers_app, name="takers")
    app.add_typer(bots_app, name="bots")
    app.command("audit")(audit_cmd)
    app.add_typer(config_app, name="config")
    app.command("help-predicates")(help_predicates)
