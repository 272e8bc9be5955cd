"""Settings of one running Likker stack: ports, paths and policies.

`stack up` writes them to `<state>/stack.json`; every service process reads that file
(its path is its only argument), so config is passed, never fetched from the environment.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

RetryPolicy = Literal["requeue", "classified"]
RETRY_POLICIES: tuple[str, ...] = ("requeue", "classified")
# Node i listens on node 1's ports + i - 1; with the default ports, more would collide
# (management 15680 + 9 is the last below prometheus' 15690).
MAX_NODES = 9
Database = Literal["sqlite", "postgresql"]
DATABASES: tuple[str, ...] = ("sqlite", "postgresql")
# The stack's own PostgreSQL server: its superuser, and one database per user of it.
POSTGRES_USER = "likker"
POSTGRES_DATABASES: tuple[str, ...] = ("likes", "auth", "likkerctl")


@dataclass
class Ports:
    amqp: int = 5680
    management: int = 15680
    rabbitmq_prometheus: int = 15690
    dist: int = 25680
    epmd: int = 4380
    prometheus: int = 9190
    alertmanager: int = 9193
    auth: int = 8181
    gateway: int = 8180
    likes: int = 8182
    webhook: int = 8189
    taker_base: int = 8190  # taker i listens on taker_base + i
    postgres: int = 5690  # the private PostgreSQL server (`--db postgresql`)


@dataclass(frozen=True)
class BrokerNode:
    """One RabbitMQ node of the stack: node i uses the node-1 ports plus i - 1."""

    index: int  # 1-based
    part: str  # "rabbitmq" for node 1, "rabbitmq-2", ... after it
    node_name: str
    amqp: int
    management: int
    rabbitmq_prometheus: int
    dist: int


@dataclass
class StackSettings:
    state_dir: Path
    ports: Ports = field(default_factory=Ports)
    host: str = "127.0.0.1"
    # Where services listen; defaults to `host`. Compose sets 0.0.0.0.
    bind_host: str | None = None
    # Per-part hostnames for URLs when parts run on different hosts (compose service names).
    hosts: dict[str, str] = field(default_factory=dict)
    takers: int = 2
    retry_policy: RetryPolicy = "classified"
    # Messages per second each taker reads, at most; 0 means as fast as it can.
    taker_rate: float = 500.0
    # Each taker stores up to `taker_batch` messages per call to the likes service, sent
    # when full or `taker_linger_ms` after its first message (docs/BENCHMARKS.md: why these).
    taker_batch: int = 100
    taker_linger_ms: float = 5.0
    # Unacked messages a taker may hold; None: twice the batch, so the next batch gathers
    # while one is being stored.
    taker_prefetch: int | None = None
    # classified policy: transient failures retried this many deliveries, then dead-lettered.
    max_retries: int = 5
    retry_backoff_s: float = 0.2
    retry_backoff_max_s: float = 5.0
    # The stores of auth, likes and likkerctl (audit log, webhook ledger, disk samples):
    # SQLite (WAL) files in the state dir, or databases on a private PostgreSQL server the
    # stack starts. `db_url` instead names an existing server's database (any SQLAlchemy
    # URL), which then holds all three stores' tables (their names do not collide).
    db: Database = "sqlite"
    db_url: str | None = None
    # Free disk the broker keeps before it blocks publishers (RabbitMQ disk_free_limit).
    disk_free_limit_bytes: int = 50_000_000
    # When set, the limit is placed this far below the free disk at broker start, so the
    # incident reaches the disk alarm in minutes on a big disk (`stack up --disk-headroom`).
    disk_headroom_bytes: int | None = None
    # Ra's write-ahead log rolls over at this size (`raft.wal_max_size_bytes`); None keeps
    # RabbitMQ's 512 MiB. Until it rolls, its entries stay in memory and on disk: that tooth
    # is what the incident's disk alert sees, so the stack keeps the default
    # (docs/STACK.md); the soak bench sets it to see the broker's memory roll over too.
    raft_wal_max_bytes: int | None = None
    # The broker VM's ERL_FULLSWEEP_AFTER: minor (young-generation) collections an Erlang
    # process does before a full one. Erlang's 65535 kept a storm's garbage in the queue
    # processes' old heaps after it was over; 0 (every collection full) cost the broker no
    # CPU at 500 likes/s and 9% more while filling a 200k backlog (docs/STACK.md). None:
    # Erlang's default.
    broker_fullsweep_after: int | None = 0
    # `likkerctl webhook serve` for Alertmanager: observe (dry runs, recorded) until an
    # operator opts in to approve or enforce; runbooks from this TOML file, else the built-in ones.
    webhook_mode: str = "observe"
    webhook_runbooks: str | None = None
    rabbit_user: str = "guest"
    rabbit_password: str = "guest"
    node_name: str = "likker@localhost"
    # RabbitMQ nodes joined into one cluster; 1 is today's single private node.
    nodes: int = 1

    # -- derived paths and URLs -------------------------------------------------------
    @property
    def settings_file(self) -> Path:
        return self.state_dir / "stack.json"

    @property
    def admin_token_file(self) -> Path:
        return self.state_dir / "admin-token"

    @property
    def webhook_token_file(self) -> Path:
        return self.state_dir / "webhook-token"

    @property
    def pid_dir(self) -> Path:
        return self.state_dir / "pids"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def listen_host(self) -> str:
        return self.bind_host or self.host

    def host_of(self, part: str) -> str:
        return self.hosts.get(part, self.host)

    @property
    def broker_nodes(self) -> list[BrokerNode]:
        p = self.ports
        prefix, _, at = self.node_name.partition("@")
        return [
            BrokerNode(
                index=i,
                part="rabbitmq" if i == 1 else f"rabbitmq-{i}",
                node_name=self.node_name if i == 1 else f"{prefix}-{i}@{at}",
                amqp=p.amqp + i - 1,
                management=p.management + i - 1,
                rabbitmq_prometheus=p.rabbitmq_prometheus + i - 1,
                dist=p.dist + i - 1,
            )
            for i in range(1, self.nodes + 1)
        ]

    def node_amqp_url(self, node: BrokerNode) -> str:
        return (
            f"amqp://{self.rabbit_user}:{self.rabbit_password}@{self.host_of(node.part)}:"
            f"{node.amqp}/%2F?heartbeat=30&blocked_connection_timeout=60"
        )

    def node_management_url(self, node: BrokerNode) -> str:
        return f"http://{self.host_of(node.part)}:{node.management}"

    @property
    def quorum_members(self) -> int | None:
        """Replicas asked of each quorum queue: one per node on a cluster (None: the default)."""
        return self.nodes if self.nodes > 1 else None

    @property
    def amqp_urls(self) -> list[str]:
        return [self.node_amqp_url(n) for n in self.broker_nodes]

    @property
    def management_urls(self) -> list[str]:
        return [self.node_management_url(n) for n in self.broker_nodes]

    @property
    def amqp_url(self) -> str:
        """Node 1's AMQP URL; clients are given all of them (`amqp_urls`) to fail over."""
        return self.amqp_urls[0]

    @property
    def management_url(self) -> str:
        """Node 1's management API (each node serves the whole cluster's view)."""
        return self.management_urls[0]

    def service_url(self, port: int, part: str = "") -> str:
        return f"http://{self.host_of(part)}:{port}"

    @property
    def auth_url(self) -> str:
        return self.service_url(self.ports.auth, "auth")

    @property
    def gateway_url(self) -> str:
        return self.service_url(self.ports.gateway, "gateway")

    @property
    def likes_url(self) -> str:
        return self.service_url(self.ports.likes, "likes")

    @property
    def prometheus_url(self) -> str:
        return self.service_url(self.ports.prometheus, "prometheus")

    @property
    def alertmanager_url(self) -> str:
        return self.service_url(self.ports.alertmanager, "alertmanager")

    @property
    def webhook_url(self) -> str:
        return self.service_url(self.ports.webhook, "webhook")

    @property
    def taker_prefetch_count(self) -> int:
        return self.taker_prefetch or 2 * self.taker_batch

    def taker_port(self, index: int) -> int:
        return self.ports.taker_base + index

    @property
    def taker_ids(self) -> list[str]:
        return [f"taker-{i}" for i in range(1, self.takers + 1)]

    @property
    def runs_postgres(self) -> bool:
        """True when the stack starts its own PostgreSQL server."""
        return self.db == "postgresql" and not self.db_url

    def store_url(self, database: str) -> str:
        """The SQLAlchemy URL of one of the stack's stores (likes, auth, likkerctl)."""
        if self.db_url:
            return self.db_url
        if self.db == "postgresql":
            return (
                f"postgresql+psycopg://{POSTGRES_USER}@{self.host_of('postgres')}:"
                f"{self.ports.postgres}/{database}"
            )
        return f"sqlite:///{self.state_dir / f'{database}.db'}"

    @property
    def likes_store_url(self) -> str:
        return self.store_url("likes")

    @property
    def auth_store_url(self) -> str:
        return self.store_url("auth")

    @property
    def audit_store_url(self) -> str:
        """likkerctl's own database for this stack's local profile."""
        return self.store_url("likkerctl")

    def admin_token(self) -> str:
        return self.admin_token_file.read_text().strip()

    # -- persistence -------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["state_dir"] = str(self.state_dir)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StackSettings:
        data = dict(data)
        data["state_dir"] = Path(data["state_dir"])
        data["ports"] = Ports(**data.get("ports", {}))
        if "likes_db_url" in data:  # stack.json of a stack started before `db_url`
            data["db_url"] = data.pop("likes_db_url")
        return cls(**data)

    def save(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.settings_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2))
        os.replace(tmp, self.settings_file)

    @classmethod
    def load(cls, path: Path) -> StackSettings:
        return cls.from_json(json.loads(path.read_text()))
