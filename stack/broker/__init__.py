"""The stack's private RabbitMQ nodes: their files, environment, cluster and health (DESIGN §8).

Each node gets its own HOME, node name, data and log dirs and ports; all share the stack's
private epmd and one Erlang cookie (kept in the state dir), so they meet each other and no
other node on the machine, and each is stopped by pid. Nodes 2..N join node 1's cluster.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from pathlib import Path

import pika
import requests

from stack.settings import BrokerNode, StackSettings

HERE = Path(__file__).parent
RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")


COOKIE_FILE = "erlang.cookie"


class JoinFailed(Exception):
    """A node did not join the cluster; the message names the node and its log."""


def node_dir(settings: StackSettings, node: BrokerNode | None = None) -> Path:
    part = node.part if node is not None else "rabbitmq"
    return settings.state_dir / part


def cookie_path(settings: StackSettings) -> Path:
    return settings.state_dir / COOKIE_FILE


def ensure_cookie(settings: StackSettings) -> str:
    """The stack's one Erlang cookie (mode 0400 in the state dir), created on first use."""
    path = cookie_path(settings)
    if not path.exists():
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(20).upper())
    return path.read_text().strip()


def _write_private(path: Path, text: str) -> None:
    if path.exists():
        if path.read_text().strip() == text:
            return
        path.chmod(0o600)
    path.write_text(text)
    path.chmod(0o400)


def render_files(settings: StackSettings, node: BrokerNode | None = None) -> Path:
    node = node or settings.broker_nodes[0]
    base = node_dir(settings, node)
    for sub in ("data", "log", "home"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    # Every node and every rabbitmqctl run with that node's HOME share the stack's cookie.
    _write_private(base / "home" / ".erlang.cookie", ensure_cookie(settings))
    conf = (
        (HERE / "rabbitmq.conf.tmpl")
        .read_text()
        .format(
            host=settings.host,
            amqp=node.amqp,
            management=node.management,
            rabbitmq_prometheus=node.rabbitmq_prometheus,
            disk_free_limit=disk_free_limit(settings, node),
            raft_wal=(
                f"raft.wal_max_size_bytes = {settings.raft_wal_max_bytes}\n"
                if settings.raft_wal_max_bytes
                else ""
            ),
        )
    )
    (base / "rabbitmq.conf").write_text(conf)
    shutil.copyfile(HERE / "enabled_plugins", base / "enabled_plugins")
    return base


def disk_free_limit(settings: StackSettings, node: BrokerNode | None = None) -> int:
    """The broker's disk_free_limit: fixed, or `free now - headroom` (never below 50 MB)."""
    if settings.disk_headroom_bytes is None:
        return settings.disk_free_limit_bytes
    free = shutil.disk_usage(node_dir(settings, node)).free
    return max(free - settings.disk_headroom_bytes, 50_000_000)


def node_env(settings: StackSettings, node: BrokerNode | None = None) -> dict[str, str]:
    """Environment for rabbitmq-server and the CLI tools that talk to this node."""
    node = node or settings.broker_nodes[0]
    base = node_dir(settings, node)
    env = dict(os.environ)
    env.update(
        HOME=str(base / "home"),
        RABBITMQ_NODENAME=node.node_name,
        RABBITMQ_MNESIA_BASE=str(base / "data"),
        RABBITMQ_LOG_BASE=str(base / "log"),
        RABBITMQ_CONFIG_FILE=str(base / "rabbitmq.conf"),
        RABBITMQ_ENABLED_PLUGINS_FILE=str(base / "enabled_plugins"),
        RABBITMQ_DIST_PORT=str(node.dist),
        RABBITMQ_PID_FILE=str(base / "pid"),
        ERL_EPMD_PORT=str(settings.ports.epmd),
    )
    if settings.broker_fullsweep_after is not None:
        env["ERL_FULLSWEEP_AFTER"] = str(settings.broker_fullsweep_after)
    if settings.host == "127.0.0.1":
        # Distribution on loopback only (by default it listens on every interface, guarded
        # by nothing but the cookie; REFERENCE.md).
        env["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"] = "-kernel inet_dist_use_interface {127,0,0,1}"
    return env


def beam_pid(settings: StackSettings, node: BrokerNode) -> int | None:
    """The pid of the node's Erlang VM (the part's pid is the rabbitmq-server script)."""
    try:
        return int((node_dir(settings, node) / "pid").read_text().strip())
    except (OSError, ValueError):
        return None


def rabbitmqctl(
    settings: StackSettings, node: BrokerNode, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(RABBIT_BIN / "rabbitmqctl"), "-n", node.node_name, *args],
        env=node_env(settings, node),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def cluster_members(settings: StackSettings, node: BrokerNode) -> set[str]:
    """The disc nodes `node` believes are in its cluster (itself included)."""
    done = rabbitmqctl(settings, node, "cluster_status", "--formatter", "json", timeout=30)
    if done.returncode != 0:
        return set()
    try:
        return set(json.loads(done.stdout).get("disk_nodes", []))
    except ValueError:
        return set()


def join(settings: StackSettings, node: BrokerNode) -> None:
    """Join `node` to node 1's cluster (REFERENCE.md); a no-op when it is a member already.

    A node that was a member and restarted (after a crash) rejoins by itself from its data.
    """
    seed = settings.broker_nodes[0]
    if node.index == 1 or seed.node_name in cluster_members(settings, node):
        return
    log = node_dir(settings, node) / "log"
    for step in (("stop_app",), ("join_cluster", seed.node_name), ("start_app",)):
        done = rabbitmqctl(settings, node, *step, timeout=120)
        if done.returncode != 0:
            why = failure_reason(done.stderr or done.stdout) or str(done.returncode)
            raise JoinFailed(
                f"node {node.node_name} did not join {seed.node_name}: `rabbitmqctl "
                f"{' '.join(step)}` failed: {why} (log {log})"
            )


def failure_reason(output: str) -> str:
    """What a failed rabbitmqctl said, in one line.

    Its error, and when it printed diagnostics their first suggestion (for a cookie
    mismatch: "check if the Erlang cookie is identical..."); the last line alone is the
    CLI's own cookie hash there, which tells nobody anything.
    """
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    error = next((line for line in lines if line.startswith("Error")), lines[-1])
    hint = next((line for line in lines if line.startswith("* suggestion:")), None)
    return f"{error} {hint.removeprefix('* ')}" if hint else error


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


def management_ready(settings: StackSettings, node: BrokerNode | None = None) -> bool:
    node = node or settings.broker_nodes[0]
    resp = requests.get(
        f"{settings.node_management_url(node)}/api/overview",
        auth=(settings.rabbit_user, settings.rabbit_password),
        timeout=2,
    )
    return resp.status_code == 200 and bool(resp.json().get("listeners"))


def ready(settings: StackSettings, node: BrokerNode | None = None) -> bool:
    """Management API answering *and* AMQP accepting: RabbitMQ opens client listeners last."""
    node = node or settings.broker_nodes[0]
    if not management_ready(settings, node):
        return False
    params = pika.URLParameters(settings.node_amqp_url(node))
    params.connection_attempts = 1
    params.socket_timeout = 2
    try:
        pika.BlockingConnection(params).close()
    except pika.exceptions.AMQPError:
        return False
    return True
