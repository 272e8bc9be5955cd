"""`likkerctl stack ...`: run the Likker reference stack locally and replay the incident in it."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
import urllib.parse
from collections import deque
from pathlib import Path
from typing import Annotated, Any

import requests
import typer
from rich.table import Table

from likkerctl.cli import errors as exit_codes
from likkerctl.cli.output import JsonOut, err, show
from likkerctl.core import contract
from likkerctl.core.errors import Conflict, Failed, InvalidInput, NotFound, Unreachable
from likkerctl.core.paths import default_state_dir
from likkerctl.plugins.runbooks import load_runbooks
from likkerctl.runbooks.context import MODES
from stack import supervisor
from stack.db import normalised_url, redacted
from stack.likes.limits import MAX_BATCH_ITEMS
from stack.settings import DATABASES, MAX_NODES, RETRY_POLICIES, Ports, StackSettings

app = typer.Typer(help="Run the Likker reference stack on this machine.", no_args_is_help=True)

StateDir = Annotated[
    Path | None,
    typer.Option(
        help="Stack state directory [env: LIKKER_STATE_DIR; default: $XDG_STATE_HOME/likker]",
        show_default=False,
    ),
]


_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
}


def parse_size(text: str) -> int:
    """'500MB', '1.5GB', '200MiB', '1000000' -> bytes; InvalidInput (exit 2) otherwise."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    unit = m.group(2).lower() if m else ""
    if not m or unit not in _UNITS:
        raise InvalidInput(f"not a size: {text!r} (examples: 500MB, 1.5GB, 200MiB)")
    return int(float(m.group(1)) * _UNITS[unit])


def _state_dir(value: Path | None) -> Path:
    return (value or default_state_dir()).resolve()


def _settings_or_fail(state_dir: Path) -> StackSettings:
    settings = supervisor.running_settings(state_dir)
    if settings is None:
        raise NotFound(
            f"no stack has been started in {state_dir}; run `likkerctl stack up` first",
        )
    return settings


@app.command()
def up(
    takers: Annotated[int, typer.Option(min=0, max=32, help="Number of actions takers.")] = 2,
    retry_policy: Annotated[
        str, typer.Option(help="Takers' retry policy: requeue (the incident) or classified.")
    ] = "classified",
    taker_rate: Annotated[
        float, typer.Option(min=0, help="Messages/s each taker reads, at most (0: unpaced).")
    ] = 500.0,
    taker_batch: Annotated[
        int,
        typer.Option(
            min=1, max=MAX_BATCH_ITEMS, help="Messages each taker stores per call, at most."
        ),
    ] = StackSettings.taker_batch,
    taker_linger_ms: Annotated[
        float,
        typer.Option(
            min=0, help="How long a batch's first message waits for more before it is stored."
        ),
    ] = StackSettings.taker_linger_ms,
    port_offset: Annotated[
        int, typer.Option(help="Add this to every default port (to run beside another stack).")
    ] = 0,
    nodes: Annotated[
        int,
        typer.Option(
            help="RabbitMQ nodes, joined into one cluster (node i uses node 1's ports + i - 1).",
        ),
    ] = 1,
    disk_headroom: Annotated[
        str | None,
        typer.Option(
            help="Set the broker's disk limit this far below the free disk at start (e.g. "
            "500MB), so the incident reaches the disk alarm in minutes.",
            show_default=False,
        ),
    ] = None,
    webhook_mode: Annotated[
        str,
        typer.Option(
            help="The webhook's runbooks: observe (dry runs, recorded), enforce (act) or "
            "approve (plan, then wait for `likkerctl webhook approve RUN`)."
        ),
    ] = "observe",
    runbooks: Annotated[
        Path | None,
        typer.Option(help="Runbook file for the webhook (default: built-in).", show_default=False),
    ] = None,
    db: Annotated[
        str,
        typer.Option(
            help="The stores of auth, likes and likkerctl: sqlite (files in the state dir) "
            "or postgresql (a private PostgreSQL server the stack starts)."
        ),
    ] = "sqlite",
    db_url: Annotated[
        str | None,
        typer.Option(
            help="Use this existing database instead (an SQLAlchemy URL, e.g. "
            "postgresql://user:pw@host:5432/likker); it is checked before anything starts.",
            show_default=False,
        ),
    ] = None,
    state_dir: StateDir = None,
    json_out: JsonOut = False,
) -> None:
    """Start RabbitMQ, Prometheus, Alertmanager, the services, takers and the webhook; wait.

    With --db postgresql, a private PostgreSQL server is started first (as the `postgres`
    user when run as root).

    The webhook runs the built-in runbooks in observe mode unless --webhook-mode enforce
    (or approve).

    Running it again is harmless: parts already running are kept with their settings.
    """
    if retry_policy not in RETRY_POLICIES:
        raise InvalidInput(f"--retry-policy must be one of {', '.join(RETRY_POLICIES)}")
    if not 1 <= nodes <= MAX_NODES:
        raise InvalidInput(f"--nodes must be between 1 and {MAX_NODES}, not {nodes}")
    if db not in DATABASES:
        raise InvalidInput(f"--db must be one of {', '.join(DATABASES)}")
    if webhook_mode not in MODES:
        raise InvalidInput(f"--webhook-mode must be {', '.join(MODES[:-1])} or {MODES[-1]}")
    # A bad file (or approve mode without its timeouts) fails here, not in the webhook's log.
    book, _, _ = load_runbooks(runbooks)
    if webhook_mode == "approve":
        book.require_approve_timeouts("--webhook-mode approve")
    ports = Ports(
        **{f.name: getattr(Ports(), f.name) + port_offset for f in dataclasses.fields(Ports)}
    )
    settings = StackSettings(
        state_dir=_state_dir(state_dir),
        ports=ports,
        takers=takers,
        retry_policy=retry_policy,  # type: ignore[arg-type]
        taker_rate=taker_rate,
        taker_batch=taker_batch,
        taker_linger_ms=taker_linger_ms,
        disk_headroom_bytes=parse_size(disk_headroom) if disk_headroom else None,
        webhook_mode=webhook_mode,
        webhook_runbooks=str(runbooks.resolve()) if runbooks else None,
        nodes=nodes,
        db="postgresql" if db_url and db_url.startswith("postgres") else db,  # type: ignore[arg-type]
        db_url=normalised_url(db_url) if db_url else None,
    )
    try:
        settings, rows = supervisor.up(settings, echo=lambda m: err.print(f"[dim]{m}[/]"))
    except (supervisor.PortInUse, supervisor.PackagesMissing) as exc:
        raise Conflict(str(exc)) from exc
    except supervisor.DatabaseUnavailable as exc:
        raise Unreachable(str(exc)) from exc
    except supervisor.StackError as exc:
        raise Failed(str(exc)) from exc
    _print_status(settings, rows, json_out)


@app.command()
def down(
    wipe: Annotated[
        bool, typer.Option(help="Also delete the stack's data (queues, stores).")
    ] = False,
    state_dir: StateDir = None,
    json_out: JsonOut = False,
) -> None:
    """Stop exactly the processes `stack up` started (by pid). Data is kept unless --wipe."""
    directory = _state_dir(state_dir)
    stopped = supervisor.down(directory, wipe=wipe)
    show(
        json_out,
        {"stopped": stopped, "wiped": wipe, "state_dir": str(directory)},
        f"stopped: {', '.join(stopped) or 'nothing was running'}"
        + (f"; wiped {directory}" if wipe else ""),
    )


@app.command()
def status(state_dir: StateDir = None, json_out: JsonOut = False) -> None:
    """Each part's pid, URL and health."""
    settings = _settings_or_fail(_state_dir(state_dir))
    rows = supervisor.status(settings)
    _print_status(settings, rows, json_out)
    if not all(r["healthy"] for r in rows):
        raise typer.Exit(exit_codes.FAILED)


def _print_status(settings: StackSettings, rows: list[dict[str, Any]], json_out: bool) -> None:
    document = {
        "state_dir": str(settings.state_dir),
        "admin_token_file": str(settings.admin_token_file),
        "retry_policy": settings.retry_policy,
        "db": settings.db,
        "likes_db_url": redacted(settings.likes_store_url),
        "amqp_url": supervisor.redacted(settings.amqp_url, settings),
        "amqp_urls": [supervisor.redacted(u, settings) for u in settings.amqp_urls],
        "management_urls": settings.management_urls,
        "parts": rows,
    }
    table = Table(title=f"Likker stack ({settings.state_dir})")
    for col in ("part", "pid", "health", "url"):
        table.add_column(col)
    for r in rows:
        health = (
            "[green]healthy[/]"
            if r["healthy"]
            else ("[yellow]running, unhealthy[/]" if r["running"] else "[red]stopped[/]")
        )
        table.add_row(r["part"], str(r["pid"] or "-"), health, r["url"] or "")
    show(
        json_out,
        document,
        table,
        f"admin token: {settings.admin_token_file}    retry policy: {settings.retry_policy}    "
        f"stores: {redacted(settings.likes_store_url) if settings.db_url else settings.db}",
    )


@app.command()
def logs(
    part: Annotated[str, typer.Argument(help="gateway, auth, likes, taker-1, rabbitmq, ...")],
    lines: Annotated[int, typer.Option("-n", "--lines", min=1)] = 50,
    follow: Annotated[bool, typer.Option("--follow", "-f")] = False,
    state_dir: StateDir = None,
) -> None:
    """Print the tail of a part's log (and follow it with -f)."""
    settings = _settings_or_fail(_state_dir(state_dir))
    names = [p.name for p in supervisor.parts(settings)]
    if part not in names:
        raise NotFound(f"unknown part {part!r}; parts: {', '.join(names)}")
    path = settings.log_dir / f"{part}.log"
    if not path.exists():
        raise NotFound(f"{part} has no log yet ({path})")
    with open(path, errors="replace") as fh:
        for line in fh.readlines()[-lines:]:
            print(line, end="")
        while follow:
            line = fh.readline()
            if line:
                print(line, end="", flush=True)
            else:
                time.sleep(0.3)


class _QueueWatch:
    """One status line for `stack load`: depth, redeliveries/s, DLQ and disk headroom.

    The redelivery rate comes from deltas of the broker's cumulative counter over the last
    few ticks, steadier than the management API's instantaneous `rate`.
    """

    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self.http = requests.Session()
        self.samples: deque[tuple[float, int]] = deque(maxlen=5)

    def _get(self, path: str) -> Any:
        """From the first node that answers (on a cluster, one may be down)."""
        error: Exception = requests.ConnectionError("no node")
        for base in self.settings.management_urls:
            try:
                resp = self.http.get(
                    f"{base}/api/{path}",
                    auth=(self.settings.rabbit_user, self.settings.rabbit_password),
                    timeout=1,
                )
            except requests.ConnectionError as exc:
                error = exc
                continue
            resp.raise_for_status()
            return resp.json()
        raise error

    def line(self) -> str:
        quote = urllib.parse.quote
        try:
            q = self._get(f"queues/%2F/{quote(contract.ACTIONS_QUEUE, safe='')}")
            dlq = self._get(f"queues/%2F/{quote(contract.DLQ_QUEUE, safe='')}")
            # The node nearest its disk limit (a dead member has no figures).
            node = min(
                (n for n in self._get("nodes") if "disk_free" in n),
                key=lambda n: n["disk_free"] - n.get("disk_free_limit", 0),
            )
        except (requests.RequestException, ValueError, KeyError, IndexError):
            return "broker: unreachable"
        self.samples.append((time.monotonic(), q.get("message_stats", {}).get("redeliver", 0)))
        (t0, r0), (t1, r1) = self.samples[0], self.samples[-1]
        redeliver = (r1 - r0) / (t1 - t0) if t1 > t0 else 0.0
        headroom = (node.get("disk_free", 0) - node.get("disk_free_limit", 0)) / 1e6
        alarm = " DISK ALARM" if node.get("disk_free_alarm") else ""
        return (
            f"queue {q.get('messages', 0)} ({q.get('messages_unacknowledged', 0)} unacked)  "
            f"redeliveries {redeliver:,.0f}/s  dlq {dlq.get('messages', 0)}  "
            f"disk headroom {headroom:,.0f} MB{alarm}"
        )


@app.command()
def load(
    scenario: Annotated[
        str, typer.Option(help="normal, or friday (adds the banned user's bot).")
    ] = "normal",
    rate: Annotated[float, typer.Option(min=0.1, help="Likes per second to send.")] = 200.0,
    duration: Annotated[float, typer.Option(min=0.1, help="Seconds to run.")] = 60.0,
    users: Annotated[int, typer.Option(min=1)] = 50,
    posts: Annotated[int, typer.Option(min=1)] = 20,
    bot_share: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="friday: share of requests from the bot.")
    ] = 0.2,
    concurrency: Annotated[int, typer.Option(min=1, max=1024)] = 64,
    state_dir: StateDir = None,
    json_out: JsonOut = False,
) -> None:
    """Send likes through the gateway at a steady rate; `friday` replays the incident."""
    # Imported here: aiohttp costs every other command 0.1 s of start-up.
    # aiohttp takes 0.3 s to import: only for the load generator.
    from stack.load import SCENARIOS, LoadError, LoadReport, run_load, setup_population

    if scenario not in SCENARIOS:
        raise InvalidInput(f"--scenario must be one of {', '.join(SCENARIOS)}")
    settings = _settings_or_fail(_state_dir(state_dir))
    try:
        pop = setup_population(
            settings.gateway_url,
            settings.auth_url,
            settings.admin_token(),
            users=users,
            posts=posts,
            friday=scenario == "friday",
        )
    except LoadError as exc:
        raise Unreachable(f"{exc}; is the stack up? (likkerctl stack status)") from exc
    if pop.bot is not None:
        err.print(
            f"friday: bot {pop.bot.bot_id} of banned user {pop.banned_user_id} is liking "
            f"post {pop.target_post} of user {pop.banner_user_id}"
        )
    watch = _QueueWatch(settings)

    async def tick(report: LoadReport) -> None:
        line = await asyncio.to_thread(watch.line)
        refused = sum(v for k, v in report.statuses.items() if k != "202")
        err.print(
            f"{report.elapsed_s:4.0f}s  sent {report.sent}  accepted {report.accepted_count}  "
            f"refused {refused} | {line}",
            soft_wrap=True,
            highlight=False,
        )

    report = asyncio.run(
        run_load(
            settings.gateway_url,
            pop,
            scenario=scenario,
            rate=rate,
            duration_s=duration,
            bot_share=bot_share,
            concurrency=concurrency,
            on_tick=tick,
        )
    )
    summary = report.as_json()
    show(
        json_out,
        summary,
        f"sent {summary['sent']} in {summary['elapsed_s']}s: accepted "
        f"{report.accepted_count} ({summary['accepted_per_s']}/s), statuses "
        f"{summary['statuses']}, errors {summary['errors']}",
    )
