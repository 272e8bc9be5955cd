"""`peek`, `top` and `help-predicates`: what is in a queue, and who owns it.

How a queue is sampled, and what that does to it, depends on its type and the broker's
version: see `likkerctl.core.messages.sampling` and `limits`.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from likkerctl.cli.output import JsonOut, out, show, state
from likkerctl.core import status
from likkerctl.core.messages import fields, predicate, sampling

SAMPLE_HELP = sampling.SAMPLING_EFFECT
DEFAULT_COLUMNS = ("actor", "post", "action")


def _sampled_line(s: sampling.Sample) -> str:
    line = f"sampled by {s.mode}: {s.why}; effect: {s.effect}"
    return line + "".join(f"\nnote: {n}" for n in s.notes)


def _fields(ctx: typer.Context, names: list[str]) -> list[fields.Field]:
    aliases = fields.aliases_of(state(ctx).profile.aliases)
    return [fields.parse_field(n, aliases) for part in names for n in part.split(",") if n]


def peek(
    ctx: typer.Context,
    queue: Annotated[str, typer.Argument(help="Queue to sample.")],
    count: Annotated[int, typer.Option("-n", "--count", min=1, max=10_000)] = 10,
    show_fields: Annotated[
        list[str] | None,
        typer.Option(
            "--show",
            help="Fields to show, comma-separated (header.NAME, body.PATH, a property, an "
            "alias) [default: actor, post, action].",
        ),
    ] = None,
    json_out: JsonOut = False,
) -> None:
    """Show the first N messages of a queue, without removing them.

    Streams are read by offset, quorum queues in place when likkerctl reaches the node
    (rabbitmq-queues peek): no side effect. Otherwise messages are taken and returned
    (basic.nack requeue): each is marked redelivered and its x-delivery-count rises by one
    (RabbitMQ 3.10 to 4.2; x-acquired-count from 4.3), and a quorum queue puts it back at
    its tail. A quorum queue with a delivery-limit is then refused on 3.10 to 4.2 (20 by
    default from 4.0), never dead-lettered.
    """
    chosen = _fields(ctx, show_fields or list(DEFAULT_COLUMNS))
    s = sampling.take(state(ctx).profile, queue, count)
    msgs = s.messages
    table = Table(title=f"{queue}: first {len(msgs)} messages", title_justify="left")
    table.add_column("offset" if s.mode == sampling.limits.STREAM else "message id")
    for f in chosen:
        table.add_column(f.name)
    for col in ("deliveries", "redelivered", "reason"):
        table.add_column(col)
    for m in msgs:
        first = str(m.offset) if s.mode == sampling.limits.STREAM else (m.message_id or "-")
        table.add_row(
            first,
            *(fields.display(_value(f, m)) for f in chosen),
            str(m.deliveries),
            "yes" if m.redelivered else "no",
            m.reason if m.reason != "unknown" else "",
        )
    document = {
        "queue": queue,
        "count": len(msgs),
        **s.about(),
        "messages": [m.as_json(chosen) for m in msgs],
    }
    show(json_out, document, table, _sampled_line(s))


def _value(f: fields.Field, m: sampling.Sampled) -> Any:
    try:
        return f.value(m)
    except fields.NotJson:
        return None


def top(
    ctx: typer.Context,
    queue: Annotated[str, typer.Argument(help="Queue to sample.")],
    by: Annotated[
        str,
        typer.Option(
            help="Field to rank by: actor, bot, user, post, action, reason, header.NAME, "
            "body.PATH, a property (routing_key, type, ...) or a profile alias."
        ),
    ] = "actor",
    sample_size: Annotated[
        int, typer.Option("--sample", min=1, max=50_000, help="Messages to sample.")
    ] = 2000,
    limit: Annotated[int, typer.Option("-n", "--limit", min=1)] = 10,
    json_out: JsonOut = False,
) -> None:
    """Rank the values of a field (actors by default) by redeliveries and share of the queue.

    Works on a sample from the head of the queue, read like `peek` reads it: by offset
    (streams) or in place (quorum queues, node reachable) with no side effect; otherwise
    taken and returned (basic.nack requeue): each sampled message is marked redelivered and
    its x-delivery-count rises by one (3.10 to 4.2; x-acquired-count from 4.3), and a quorum
    queue puts it back at the tail. A quorum queue with a delivery-limit is then refused on
    3.10 to 4.2 (20 by default from 4.0), never dead-lettered.
    """
    profile = state(ctx).profile
    f = _fields(ctx, [by])[0] if by else fields.parse_field("actor")
    depth = status.queue_depth(profile, queue)
    s = sampling.take(profile, queue, sample_size)
    msgs = s.messages
    sampling.check_json(msgs, f)
    rows = sampling.top(msgs, f, max(depth, len(msgs)), limit)
    table = Table(
        title=f"{queue}: top {f.name} in a sample of {len(msgs):,} (depth {depth:,})",
        title_justify="left",
    )
    for col in (f.name, "share", "≈ in queue", "redeliveries", "of all redeliveries", "max"):
        table.add_column(col, justify="left" if col == f.name else "right")
    for r in rows:
        table.add_row(
            fields.display(r[f.name]),
            f"{r['share']:.1%}",
            f"{r['estimated']:,}",
            f"{r['redeliveries']:,}",
            f"{r['redelivery_share']:.1%}",
            str(r["max_delivery_count"]),
        )
    document = {
        "queue": queue,
        "by": f.name,
        "depth": depth,
        "sampled": len(msgs),
        **s.about(),
        "delivery_counts": sampling.delivery_histogram(msgs),
        "rows": rows,
    }
    show(json_out, document, table, _sampled_line(s))


PREDICATE_HELP = predicate.__doc__ or ""


def help_predicates() -> None:
    """The --where grammar, with examples."""
    out.print(PREDICATE_HELP.strip())
