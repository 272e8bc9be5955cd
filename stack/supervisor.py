"""`stack up|down|status`: start every part in order, wait for health, stop exactly those pids."""

from __future__ import annotations

import os
import shutil
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from stack import alertmanager, broker, db, postgres, procs, prometheus, topology
from stack.init_state import ensure_secrets
from stack.settings import StackSettings


class StackError(Exception):
    """A stack operation failed; the message says what and what to try."""


class DatabaseUnavailable(StackError):
    """The stores' database cannot be used: `--db-url` unreachable, or the private
    PostgreSQL server would not start. Nothing is left running."""


def database_unreachable(url: str, timeout: float = 5.0) -> str | None:
    """Why the database at `url` cannot be used (one line), or None when a query works."""
    try:
        engine = db.make_engine(url, connect_timeout=timeout)
    except Exception as exc:  # a malformed URL or an unknown driver
        return f"database URL {db.redacted(url)} is not usable: {exc}".splitlines()[0]
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except Exception as exc:  # SQLAlchemy wraps every driver error; the first line says why
        lines = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        detail = lines[0] if lines else type(exc).__name__
        return f"database {db.redacted(url)} unreachable: {detail}"
    finally:
        engine.dispose()
    return None


class PackagesMissing(StackError):
    """A program the stack runs is not installed; nothing was started."""


class PortInUse(StackError):
    def __init__(self, part: str, port: int) -> None:
        super().__init__(
            f"port {port} needed by {part} is already in use by another process; "
            f"free it or start the stack with other ports"
        )
        self.part = part
        self.port = port


@dataclass
class Part:
    name: str
    argv: list[str]
    ports: list[int]
    ready: Callable[[], bool]
    url: str | None = None
    env: dict[str, str] | None = None
    render: Callable[[], Any] | None = None
    ready_timeout: float = 30.0
    stop_timeout: float = 10.0
    after_ready: list[Callable[[], None]] = field(default_factory=list)
    # Extra fields of this part in `stack status --json` (a broker node's name and URLs).
    info: dict[str, Any] = field(default_factory=dict)
    stop_signal: int = signal.SIGTERM
    user: str | None = None  # run as this user (PostgreSQL refuses root)
    cwd: Path | None = None


def _healthz(url: str) -> Callable[[], bool]:
    return lambda: requests.get(f"{url}/healthz", timeout=2).status_code == 200


def _taker_ready(url: str) -> Callable[[], bool]:
    return lambda: bool(requests.get(f"{url}/healthz", timeout=2).json().get("connected"))


def parts(settings: StackSettings) -> list[Part]:
    p = settings.ports
    py = sys.executable
    cfg = str(settings.settings_file)
    # The database first: when it cannot start, nothing else has been started for nothing.
    result = [postgres_part(settings)] if settings.runs_postgres else []
    result += [
        Part(
            "epmd",
            broker.epmd_argv(settings),
            [p.epmd],
            ready=lambda: procs.port_in_use(settings.host, p.epmd),
            env=broker.node_env(settings),
            stop_timeout=5,
        ),
        *broker_parts(settings),
        Part(
            "prometheus",
            prometheus.argv(settings),
            [p.prometheus],
            ready=lambda: prometheus.ready(settings),
            url=settings.prometheus_url,
            render=lambda: prometheus.render_files(settings),
        ),
        Part(
            "alertmanager",
            alertmanager.argv(settings),
            [p.alertmanager],
            ready=lambda: alertmanager.ready(settings),
            url=settings.alertmanager_url,
            render=lambda: alertmanager.render_files(settings),
        ),
    ]
    for name, port in (("auth", p.auth), ("likes", p.likes), ("gateway", p.gateway)):
        url = settings.service_url(port, name)
        result.append(Part(name, [py, "-m", f"stack.{name}", cfg], [port], _healthz(url), url))
    for index, taker_id in enumerate(settings.taker_ids, start=1):
        port = settings.taker_port(index)
        url = settings.service_url(port, taker_id)
        result.append(
            Part(taker_id, [py, "-m", "stack.taker", cfg, taker_id], [port], _taker_ready(url), url)
        )
    result.append(webhook_part(settings))
    return result


def broker_parts(settings: StackSettings) -> list[Part]:
    """One part per RabbitMQ node; nodes 2..N join node 1, and the contract's objects are
    declared once the last one is in (a quorum queue gets a member on each node there is)."""
    nodes = settings.broker_nodes
    result = []
    for node in nodes:
        hooks: list[Callable[[], None]] = []
        if node.index > 1:
            hooks.append(lambda node=node: broker.join(settings, node))  # type: ignore[misc]
        if node is nodes[-1]:
            hooks.append(lambda: topology.declare_at(settings.amqp_urls, settings.quorum_members))
        result.append(
            Part(
                node.part,
                broker.server_argv(),
                [node.amqp, node.management, node.rabbitmq_prometheus, node.dist],
                ready=lambda node=node: broker.ready(settings, node),  # type: ignore[misc]
                url=settings.node_management_url(node),
                env=broker.node_env(settings, node),
                render=lambda node=node: broker.render_files(settings, node),  # type: ignore[misc]
                ready_timeout=90,
                stop_timeout=60,
                after_ready=hooks,
                info={
                    "node": node.node_name,
                    "amqp_url": redacted(settings.node_amqp_url(node), settings),
                    "management_url": settings.node_management_url(node),
                    "prometheus_url": settings.service_url(node.rabbitmq_prometheus, node.part),
                },
            )
        )
    return result


def redacted(url: str, settings: StackSettings) -> str:
    return url.split("?")[0].replace(f":{settings.rabbit_password}@", ":***@")


def postgres_part(settings: StackSettings) -> Part:
    """The private PostgreSQL server; SIGINT is its fast shutdown (SIGTERM would wait for
    every client to disconnect)."""
    return Part(
        "postgres",
        postgres.argv(settings),
        [settings.ports.postgres],
        ready=lambda: postgres.ready(settings),
        url=postgres.server_url(settings),
        env=postgres.user_env(),
        render=lambda: postgres.prepare(settings),
        ready_timeout=60,
        stop_timeout=30,
        after_ready=[lambda: postgres.create_databases(settings)],
        stop_signal=signal.SIGINT,
        user=postgres.run_as(),
        cwd=postgres.server_dir(settings),
    )


def webhook_part(settings: StackSettings) -> Part:
    """likkerctl's own webhook, on the local profile of this very stack."""
    argv = [
        sys.executable, "-m", "likkerctl", "webhook", "serve",
        "--host", settings.listen_host,
        "--port", str(settings.ports.webhook),
        "--token-file", str(settings.webhook_token_file),
        "--mode", settings.webhook_mode,
    ]  # fmt: skip
    if settings.webhook_runbooks:
        argv += ["--runbooks", settings.webhook_runbooks]
    # The caller's environment without its LIKKER_* overrides (an operator's shell may point
    # likkerctl at another cluster), pinned to this stack's local profile.
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIKKER_")}
    env |= {"LIKKER_PROFILE": "local", "LIKKER_STATE_DIR": str(settings.state_dir)}
    url = settings.webhook_url
    return Part("webhook", argv, [settings.ports.webhook], _healthz(url), url, env=env)


def missing_binaries(settings: StackSettings | None = None) -> list[str]:
    wanted = [str(broker.RABBIT_BIN / "rabbitmq-server"), prometheus.BINARY, alertmanager.BINARY]
    if settings is not None and settings.runs_postgres:
        wanted.append(str(postgres.BIN / "postgres"))
    missing = [b for b in wanted if not Path(b).exists()]
    if shutil.which("epmd") is None:
        missing.append("epmd")
    return missing


def running_settings(state_dir: Path) -> StackSettings | None:
    """The settings of the stack recorded in state_dir, if one was ever started there."""
    path = state_dir / "stack.json"
    return StackSettings.load(path) if path.exists() else None


def _log_tail(path: str, lines: int = 15) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def up(
    settings: StackSettings,
    *,
    echo: Callable[[str], None] = lambda _m: None,
) -> tuple[StackSettings, list[dict[str, Any]]]:
    """Start what is not running; return the settings in force and each part's status."""
    missing = missing_binaries(settings)
    if missing:
        raise PackagesMissing(
            "missing: " + ", ".join(missing) + " (apt-get install -y rabbitmq-server prometheus "
            "prometheus-alertmanager" + (" postgresql" if settings.runs_postgres else "") + ")"
        )
    if settings.db_url:
        reason = database_unreachable(settings.db_url)
        if reason:
            raise DatabaseUnavailable(reason)
    records = procs.load_records(settings.pid_dir)
    running = {name for name, rec in records.items() if rec.is_running()}
    if running:
        previous = running_settings(settings.state_dir)
        if previous is not None:
            if previous.to_json() != settings.to_json():
                echo(
                    "a stack is already running here: keeping its settings "
                    "(run `likkerctl stack down` first to change them)"
                )
            settings = previous
    settings.save()
    ensure_secrets(settings)

    plan = parts(settings)
    for part in plan:
        if part.name in running:
            continue
        for port in part.ports:
            if procs.port_in_use(settings.host, port):
                raise PortInUse(part.name, port)

    started: list[tuple[Part, procs.ProcRecord]] = []
    try:
        for part in plan:
            if part.name in running:
                echo(f"{part.name}: already running (pid {records[part.name].pid})")
                continue
            if part.render:
                try:
                    part.render()
                except postgres.PostgresError as exc:
                    raise DatabaseUnavailable(f"{part.name}: {exc}") from exc
            rec = procs.spawn(
                part.name,
                part.argv,
                log_path=settings.log_dir / f"{part.name}.log",
                pid_dir=settings.pid_dir,
                env=part.env,
                url=part.url,
                user=part.user,
                cwd=part.cwd,
            )
            started.append((part, rec))
            if not procs.wait_until(part.ready, timeout=part.ready_timeout, alive=rec.is_running):
                state = "exited" if not rec.is_running() else "is not healthy"
                if part.name == "postgres":
                    raise DatabaseUnavailable(
                        f"postgres {state} after start: {postgres.failure(rec.log)} (log {rec.log})"
                    )
                raise StackError(
                    f"{part.name} {state} after start (log {rec.log}):\n{_log_tail(rec.log)}"
                )
            for hook in part.after_ready:
                try:
                    hook()
                except broker.JoinFailed as exc:
                    raise StackError(str(exc)) from exc
                except Exception as exc:  # reported with the part's name
                    raise StackError(
                        f"{part.name} started but setting it up failed: {exc!r}"
                    ) from exc
            echo(f"{part.name}: up (pid {rec.pid})" + (f" at {part.url}" if part.url else ""))
    except BaseException:
        for part, rec in reversed(started):
            procs.stop(rec, timeout=part.stop_timeout, sig=part.stop_signal)
            (settings.pid_dir / f"{part.name}.json").unlink(missing_ok=True)
        raise
    return settings, status(settings)


def status(settings: StackSettings) -> list[dict[str, Any]]:
    records = procs.load_records(settings.pid_dir)
    rows = []
    for part in parts(settings):
        rec = records.get(part.name)
        running = rec is not None and rec.is_running()
        healthy = False
        if running:
            try:
                healthy = bool(part.ready())
            except Exception:  # unreachable means unhealthy
                healthy = False
        rows.append(
            {
                "part": part.name,
                "pid": rec.pid if running and rec else None,
                "running": running,
                "healthy": healthy,
                "url": part.url,
                "log": str(settings.log_dir / f"{part.name}.log"),
                **part.info,
            }
        )
    return rows


def down(state_dir: Path, *, wipe: bool = False) -> list[str]:
    """Stop every recorded part (reverse start order); return the names that were running."""
    settings = running_settings(state_dir)
    records = procs.load_records(state_dir / "pids")
    order = [p.name for p in parts(settings)] if settings else []
    names = [n for n in reversed(order) if n in records]
    names += [n for n in records if n not in names]  # parts of an older layout, if any
    plan = {p.name: p for p in parts(settings)} if settings else {}
    stopped = []
    for name in names:
        rec = records[name]
        part = plan.get(name)
        timeout, sig = (part.stop_timeout, part.stop_signal) if part else (10.0, signal.SIGTERM)
        if procs.stop(rec, timeout=timeout, sig=sig):
            stopped.append(name)
        (state_dir / "pids" / f"{name}.json").unlink(missing_ok=True)
    if wipe and state_dir.exists():
        if settings is not None:
            postgres.wipe(settings)  # its cluster may live outside the state dir
        shutil.rmtree(state_dir)
    return stopped
