"""`likkerctl webhook serve|check|log|approve|reject`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from likkerctl.cli import output
from likkerctl.cli.output import DryRun, JsonOut, Yes, err, out, state
from likkerctl.core import operations
from likkerctl.core.contract.ports import port_in_use
from likkerctl.core.errors import Conflict, InvalidInput
from likkerctl.plugins.runbooks import load_runbooks
from likkerctl.runbooks import spec
from likkerctl.runbooks.context import MODES

app = typer.Typer(help="The Alertmanager receiver that runs runbooks.", no_args_is_help=True)

Runbooks = Annotated[
    Path | None,
    typer.Option(
        "--runbooks",
        help="Runbook file (TOML). Default: the built-in runbooks for the Likker stack.",
        show_default=False,
    ),
]


def _token(path: Path | None, state_dir: Path) -> str:
    token_file = path or state_dir / "webhook-token"
    try:
        token = token_file.read_text().strip()
    except OSError as exc:
        hint = "" if path else " (the local stack writes one; or pass --token-file)"
        raise InvalidInput(
            f"cannot read the webhook token {token_file}: {exc.strerror}{hint}",
        ) from exc
    if len(token) < 16:
        raise InvalidInput(f"the webhook token in {token_file} is shorter than 16 characters")
    return token


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8189,
    token_file: Annotated[
        Path | None,
        typer.Option(
            help="File holding the bearer token Alertmanager sends (its http_config "
            "credentials_file). Default: the local stack's <state>/webhook-token.",
            show_default=False,
        ),
    ] = None,
    mode: Annotated[
        str | None,
        typer.Option(
            help="observe: every action a dry run, recorded (the default); enforce: act; "
            "approve: plan, then wait for `webhook approve RUN` (or the dashboard) until the "
            "runbook's approve_timeout_s. Default: the runbook file's `mode`, else observe.",
            show_default=False,
        ),
    ] = None,
    runbooks: Runbooks = None,
    max_body: Annotated[
        int, typer.Option(min=1024, help="Largest request body accepted, in bytes.")
    ] = 1 << 20,
) -> None:
    """Receive Alertmanager's webhook (POST /alerts) and run the matching runbooks.

    Each alert (fingerprint + startsAt) runs at most once, one runbook per target at a time,
    at most `max_runs_per_hour`. Every step is in `likkerctl audit` under the alert's key;
    `likkerctl webhook log` lists what was received. /healthz and /metrics are served too.
    """
    # FastAPI and pydantic: only for the command that serves.
    from likkerctl.core.contract.http import serve as serve_app
    from likkerctl.webhook.metrics import Metrics
    from likkerctl.webhook.receiver import ReceiverSettings, create_app
    from likkerctl.webhook.recovery import recover
    from likkerctl.webhook.remediator import Remediator

    profile = state(ctx).profile
    book, steps, infos = load_runbooks(runbooks)
    chosen = mode or book.mode or "observe"
    if chosen not in MODES:
        raise InvalidInput(f"--mode must be {', '.join(MODES[:-1])} or {MODES[-1]}")
    if chosen == "approve" and mode:
        book.require_approve_timeouts("--mode approve")
    token = _token(token_file, profile.state_path)
    if port_in_use(host, port):
        raise Conflict(f"port {port} on {host} is in use; pick another with --port")
    settings = ReceiverSettings(token=token, mode=chosen, max_body_bytes=max_body)  # type: ignore[arg-type]
    remediator = Remediator(profile, book, steps, settings.mode, Metrics(), settings.workers)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("pika").setLevel(logging.WARNING)  # a line per connection otherwise
    for info in infos:
        if info.status != "ok":
            logging.getLogger("likkerctl.webhook").error(
                "plugin step %s (%s) failed to load: %s", info.name, info.source, info.error
            )
    # Before the first alert: what a crash interrupted, and what is still waiting for a human.
    for r in recover(remediator):
        where = r["interrupted"]["where"]
        err.print(f"webhook: run {r['run']} ({r['key']}) was interrupted: {where}")
    adopted = remediator.adopt()
    if adopted:
        err.print(f"webhook: waiting again for decisions on run(s) {', '.join(map(str, adopted))}")
    remediator.start()
    err.print(
        f"webhook: {chosen} mode, runbooks from {book.source} "
        f"({', '.join(book.runbooks)}), listening on http://{host}:{port}/alerts"
    )
    try:
        serve_app(create_app(settings, remediator), host, port)
    finally:
        remediator.shutdown()


@app.command()
def check(
    runbooks: Runbooks = None,
    show: Annotated[bool, typer.Option(help="Print the file itself (to start your own).")] = False,
    json_out: JsonOut = False,
) -> None:
    """Check a runbook file (every step, parameter and template) and print what it does."""
    if show:
        print(runbooks.read_text() if runbooks else spec.default_text(), end="")
        return
    book, _, _ = load_runbooks(runbooks)
    if json_out:
        output.show(True, book.as_json())
        return
    out.print(
        f"{escape(book.source)}: {len(book.runbooks)} runbook(s), mode "
        f"{book.mode or 'observe (default)'}, at most {book.max_runs_per_hour} run(s)/hour"
    )
    for r in book.runbooks.values():
        waits = (
            f"; approve mode waits {r.approve_timeout_s:g}s for a decision"
            if r.approve_timeout_s is not None
            else "; no approve_timeout_s (cannot run in approve mode)"
        )
        out.print(
            f"\n[bold]{escape(r.name)}[/] for {', '.join(r.alerts) or '(runbook annotation)'}"
            f"; target {escape(r.target)}{waits}"
        )
        for i, s in enumerate(r.steps):
            when = "" if s.when == "ok" else f" (when {s.when})"
            params = ", ".join(f"{k}={v!r}" for k, v in s.params.items())
            out.print(f"  {i + 1}. {escape(s.step)}{when}: {escape(params)}")


def _outcome(row: dict[str, Any]) -> str:
    a = row.get("approval")
    if row["outcome"] == "pending" and a:
        return f"pending until {a['expires_at'][11:19]} UTC\n(webhook approve {row['id']})"
    if a and a["decision"]:
        return f"{row['outcome']}\n({a['decision']} by {a['decided_by']})"
    return str(row["outcome"])


@app.command("log")
def log_cmd(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("-n", "--limit", min=1)] = 20,
    alert: Annotated[
        str | None, typer.Option(help="Only this alert key (fingerprint:startsAt).")
    ] = None,
    pending: Annotated[
        bool, typer.Option("--pending", help="Only runs waiting for approval.")
    ] = False,
    json_out: JsonOut = False,
) -> None:
    """Alerts the webhook received, newest first, and what it did about each (the id is the
    run's, for `webhook approve|reject RUN`)."""
    from likkerctl.webhook.ledger import Ledger  # SQLAlchemy: only when the ledger is read

    rows = Ledger(state(ctx).profile.audit_url).recent(limit, alert, pending)
    table = Table(title="webhook: received alerts", title_justify="left")
    for col in ("id", "received", "alert", "status", "runbook", "mode", "outcome", "seconds"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            str(r["id"]),
            (r["received_at"] or "")[:19],
            f"{r['alertname']}\n{r['alert']}",
            r["status"],
            r["runbook"] or "-",
            r["mode"] or "-",
            _outcome(r),
            "" if r["seconds"] is None else f"{r['seconds']:.1f}",
        )
    output.show(json_out, rows, table)


Run = Annotated[int, typer.Argument(help="The run: its id in `likkerctl webhook log`.")]
By = Annotated[
    str | None,
    typer.Option(help="Your name, for the audit log (the OS user is recorded anyway)."),
]


def _decide(
    ctx: typer.Context,
    verb: str,
    run: int,
    by: str | None,
    reason: str | None,
    dry_run: bool,
    yes: bool,
    json_out: bool,
) -> None:
    op = operations.RunDecision.of(state(ctx).profile, verb, run, by, reason)
    if not json_out:  # the plan first, so what is approved is what was read
        try:
            planned = op.plan(state(ctx).profile, True)
        except Exception:  # perform() below says what is wrong, and audits it
            planned = None
        if planned and not planned["noop"]:
            err.print(f"run {run}: runbook {planned['runbook']} for {planned['alert']}, planned:")
            for s in planned["steps"]:
                err.print(
                    f"  {s['index'] + 1}. {escape(s['step'])}: {s['status']}: "
                    f"{escape(s['summary'])}"
                )
    result = output.perform(ctx, op, dry_run, yes, json_out)
    if result is not None:
        output.show(json_out, result, result["summary"])


@app.command()
def approve(
    ctx: typer.Context,
    run: Run,
    by: By = None,
    dry_run: DryRun = False,
    yes: Yes = False,
    json_out: JsonOut = False,
) -> None:
    """Approve a run the webhook planned in approve mode: it runs within seconds.

    Shows the plan (every step's dry run) and asks first. Each step plans again as it acts.
    A second approval changes nothing; an unknown run is exit 5, a finished, rejected or
    expired one exit 6.
    """
    _decide(ctx, "approve", run, by, None, dry_run, yes, json_out)


@app.command()
def reject(
    ctx: typer.Context,
    run: Run,
    by: By = None,
    reason: Annotated[str | None, typer.Option(help="Why, for the page and the log.")] = None,
    dry_run: DryRun = False,
    yes: Yes = False,
    json_out: JsonOut = False,
) -> None:
    """Reject a run the webhook planned in approve mode: nothing is done; it escalates."""
    _decide(ctx, "reject", run, by, reason, dry_run, yes, json_out)
