"""`likkerctl bots list|block|unblock`: stop an abusive bot at the gateway."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from likkerctl.cli.output import DryRun, JsonOut, Yes, perform, show, state
from likkerctl.core import operations
from likkerctl.core.clients import auth

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
    rows = auth.AuthAdmin(state(ctx).profile).bots(blocked)
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
    show(json_out, {"bots": rows}, table)


def _bot_verb(
    ctx: typer.Context,
    verb: str,
    bot_id: int,
    reason: str | None,
    dry_run: bool,
    yes: bool,
    json_out: bool,
) -> None:
    result = perform(ctx, operations.BotCommand(verb, bot_id, reason), dry_run, yes, json_out)
    if result is not None:
        show(json_out, result["bot"], result["summary"])


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
