"""The stack's private RabbitMQ node: its files, environment and health (DESIGN §8).

The node gets its own HOME (Erlang cookie), node name, data and log dirs, ports and a
private epmd, so it never meets another node on the machine and is stopped by pid.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pika
import requests

from stack.settings import StackSettings

HERE = Path(__file__).parent
RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")


def node_dir(settings: StackSettings) -> Path:
    return settings.state_dir / "rabbitmq"


def render_files(settings: StackSettings) -> Path:
    base = node_dir(settings)
    for sub in ("data", "log", "home"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    p = settings.ports
    conf = (
        (HERE / "rabbitmq.conf.tmpl")
        .read_text()
        .format(
            host=settings.host,
            amqp=p.amqp,
            management=p.management,
            rabbitmq_prometheus=p.rabbitmq_prometheus,
            disk_free_limit=disk_free_limit(settings),
        )
    )
    (base / "rabbitmq.conf").write_text(conf)
    shutil.copyfile(HERE / "enabled_plugins", base / "enabled_plugins")
    return base


def disk_free_limit(settings: StackSettings) -> int:
    """The broker's disk_free_limit: fixed, or `free now - headroom` (never below 50 MB)."""
    if settings.disk_headroom_bytes is None:
        return settings.disk_free_limit_bytes
    free = shutil.disk_usage(node_dir(settings)).free
    return max(free - settings.disk_headroom_bytes, 50_000_000)


def node_env(settings: StackSettings) -> dict[str, str]:
    """Environment for rabbitmq-server and the CLI tools that talk to this node."""
    base = node_dir(settings)
    env = dict(os.environ)
    env.update(
        HOME=str(base / "home"),
        RABBITMQ_NODENAME=settings.node_name,
        RABBITMQ_MNESIA_BASE=str(base / "data"),
        RABBITMQ_LOG_BASE=str(base / "log"),
        RABBITMQ_CONFIG_FILE=str(base / "rabbitmq.conf"),
        RABBITMQ_ENABLED_PLUGINS_FILE=str(base / "enabled_plugins"),
        RABBITMQ_DIST_PORT=str(settings.ports.dist),
        RABBITMQ_PID_FILE=str(base / "pid"),
        ERL_EPMD_PORT=str(settings.ports.epmd),
    )
    return env


def epmd_argv(settings: StackSettings) -> list[str]:
    # Foreground epmd on a private port: ours to stop, invisible to other Erlang nodes.
    return [
        shutil.which("epmd") or "epmd",
        "-port",
        str(settings.ports.epmd),
        "-address",
        "127.0.0.1",
    ]


def server_argv() -> list[str]:
    # Foreground mode: the script traps SIGTERM into a graceful broker stop.
    return [str(RABBIT_BIN / "rabbitmq-server")]


def is_installed() -> bool:
    return (RABBIT_BIN / "rabbitmq-server").exists()


def management_ready(settings: StackSettings) -> bool:
    resp = requests.get(
        f"{settings.management_url}/api/overview",
        auth=(settings.rabbit_user, settings.rabbit_password),
        timeout=2,
    )
    return resp.status_code == 200 and bool(resp.json().get("listeners"))


def ready(settings: StackSettings) -> bool:
    """Management API answering *and* AMQP accepting: RabbitMQ opens client listeners last."""
    if not management_ready(settings):
        return False
    params = pika.URLParameters(settings.amqp_url)
    params.connection_attempts = 1
    params.socket_timeout = 2
    try:
        pika.BlockingConnection(params).close()
    except pika.exceptions.AMQPError:
        return False
    return True
