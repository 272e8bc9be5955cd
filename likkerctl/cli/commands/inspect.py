"""`peek`, `top` and `help-predicates`: what is in a queue, and who owns it.

Sampling takes messages and returns them at once (basic.nack requeue); see
`likkerctl.core.messages.sampling` for what that does to the messages.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from likkerctl.cli.output import JsonOut, out, show, state
from likkerctl.core import status
from likkerctl.core.errors import InvalidInput
from likkerctl.core.messages import predicate, sampling

SAMPLE_HELP = sampling.SAMPLING_EFFECT


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
    msgs = sampling.sample(state(ctx).profile, queue, count)
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
    document = {"queue": queue, "count": len(msgs), "messages": [m.as_json() for m in msgs]}
    show(json_out, document, table)


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
    if by not in sampling.KEYS:
        raise InvalidInput(f"--by must be one of {', '.join(sampling.KEYS)}")
    profile = state(ctx).profile
    depth = status.queue_depth(profile, queue)
    msgs = sampling.sample(profile, queue, sample_size)
    rows = sampling.top(msgs, by, max(depth, len(msgs)), limit)
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
    document = {
        "queue": queue,
        "by": by,
        "depth": depth,
        "sampled": len(msgs),
        "delivery_counts": sampling.delivery_histogram(msgs),
        "rows": rows,
    }
    show(json_out, document, table)


PREDICATE_HELP = predicate.__doc__ or ""


def help_predicates() -> None:
    """The --where grammar, with examples."""
    out.print(PREDICATE_HELP.strip())
