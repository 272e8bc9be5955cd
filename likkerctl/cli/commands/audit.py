"""`likkerctl audit` and `likkerctl config show`: what was done, and with which profile."""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer
from rich.table import Table

from likkerctl.cli.output import JsonOut, show, state
from likkerctl.core.paths import config_path


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
    from likkerctl.core.store import audit  # SQLAlchemy: only when the audit log is read

    rows = audit.entries(state(ctx).profile.audit_url, limit, command, alert)
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
    show(json_out, {"entries": rows}, table)


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
    lines = [f"{key:18} {value}" for key, value in data.items() if key != "sources"]
    show(json_out, data, *lines, f"{'config file':18} {config_path(os.environ)}")
