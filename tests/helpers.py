"""Test helpers: a running stack on free ports, its database, its broker's HTTP API."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import signal
import sqlite3
import subprocess
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pika
import psutil
import requests
from sqlalchemy import text

from likkerctl.core import contract
from likkerctl.core.contract.nodes import Nodes
from stack import broker, procs, supervisor
from stack.db import make_engine
from stack.load import LoadReport, Population, run_load, setup_population
from stack.settings import Ports, StackSettings


def _utc(value: str | datetime) -> datetime:
    # SQLite keeps SQLAlchemy's DateTime as naive ISO text, written in UTC.
    when = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


# Broker node i listens on node 1's ports + i - 1.
NODE_PORTS = ("amqp", "management", "rabbitmq_prometheus", "dist")


def free_ports(nodes: int = 1) -> Ports:
    return Ports(
        **{
            f.name: procs.free_port(block=nodes if f.name in NODE_PORTS else 1)
            for f in dataclasses.fields(Ports)
            if f.name != "taker_base"
        },
        taker_base=procs.free_port(block=8) - 1,  # taker-N listens on taker_base + N
    )


class RunningStack:
    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self.http = requests.Session()
        self._engine = make_engine(settings.likes_store_url)

    # -- processes --------------------------------------------------------------------
    def records(self) -> dict[str, procs.ProcRecord]:
        return procs.load_records(self.settings.pid_dir)

    def all_pids(self) -> set[int]:
        pids = set()
        for rec in self.records().values():
            if rec.is_running():
                pids.add(rec.pid)
                pids.update(p.pid for p in rec.group_members())
        return pids

    def kill_9(self, part: str, port: int) -> None:
        """SIGKILL a part; return once it is dead and its port is free again.

        A killed process's group leader turns zombie (and "not running") while its other
        threads still exit, holding its sockets for a moment; restarting before they are
        gone fails with the port in use.
        """
        rec = self.records()[part]
        os.kill(rec.pid, signal.SIGKILL)
        assert wait_for(
            lambda: not rec.is_running() and not procs.port_in_use(self.settings.host, port),
            timeout=15,
        ), f"{part} (pid {rec.pid}) still holds port {port}"

    def down(self) -> set[int]:
        """Stop the stack; return the pids that were ours, all of which must now be gone."""
        pids = self.all_pids()
        supervisor.down(self.settings.state_dir)
        return pids

    # -- HTTP -------------------------------------------------------------------------
    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.settings.admin_token()}"}

    def new_user(self) -> dict[str, Any]:
        resp = self.http.post(f"{self.settings.auth_url}/v1/users", headers=self.admin, timeout=5)
        resp.raise_for_status()
        return dict(resp.json())

    def new_post(self, token: str) -> int:
        resp = self.http.post(
            f"{self.settings.gateway_url}/v1/posts",
            json={"text": "hi"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=5,
        )
        resp.raise_for_status()
        return int(resp.json()["post_id"])

    def new_bot(self, owner_id: int, name: str | None = None) -> dict[str, Any]:
        resp = self.http.post(
            f"{self.settings.auth_url}/v1/users/{owner_id}/bots",
            headers=self.admin,
            json={"name": name} if name else None,
            timeout=5,
        )
        resp.raise_for_status()
        return dict(resp.json())

    def like(self, post_id: int, token: str, **kw: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}", **kw.pop("headers", {})}
        return self.http.post(
            f"{self.settings.gateway_url}/v1/posts/{post_id}/likes",
            headers=headers,
            timeout=10,
            **kw,
        )

    def mgmt(self, path: str, method: str = "GET", **kw: Any) -> Any:
        """The management API of the first node that answers (a cluster may have one down)."""
        *others, last = self.settings.management_urls
        for base in [*others, last]:
            try:
                resp = self.http.request(
                    method,
                    f"{base}/api/{path}",
                    auth=(self.settings.rabbit_user, self.settings.rabbit_password),
                    timeout=10,
                    **kw,
                )
                break
            except requests.ConnectionError:
                if base == last:
                    raise
        resp.raise_for_status()
        return resp.json() if resp.content else None

    def rabbitmqctl(self, *args: str) -> None:
        """Run `rabbitmqctl` against this stack's node (its own HOME, cookie and epmd)."""
        subprocess.run(
            [str(broker.RABBIT_BIN / "rabbitmqctl"), "-n", self.settings.node_name, *args],
            env=broker.node_env(self.settings),
            check=True,
            capture_output=True,
            timeout=60,
        )

    def queue(self, name: str) -> dict[str, Any]:
        return dict(self.mgmt(f"queues/%2F/{urllib.parse.quote(name, safe='')}"))

    def sample(self, queue: str, count: int = 100) -> list[dict[str, Any]]:
        """Messages at the head of a queue via the management API (requeued, so it perturbs)."""
        return list(
            self.mgmt(
                f"queues/%2F/{urllib.parse.quote(queue, safe='')}/get",
                "POST",
                json={"count": count, "ackmode": "ack_requeue_true", "encoding": "auto"},
            )
        )

    def purge(self, queue: str) -> None:
        self.mgmt(f"queues/%2F/{urllib.parse.quote(queue, safe='')}/contents", "DELETE")

    def held_and_ready(self, queue: str = contract.ACTIONS_QUEUE) -> int:
        """Ready plus unacked messages (the management API's figures lag by a few seconds)."""
        q = self.queue(queue)
        return int(q.get("messages_ready", 0)) + int(q.get("messages_unacknowledged", 0))

    def connect(self) -> pika.BlockingConnection:
        """AMQP to the first node that answers."""
        return Nodes(self.settings.amqp_urls, "tests", logging.getLogger("tests")).connect()

    # -- takers -----------------------------------------------------------------------
    def control(self, command: str, target: str = "*") -> list[dict[str, Any]]:
        """Send a control command; collect the takers' replies for two seconds."""
        conn = self.connect()
        try:
            channel = conn.channel()
            replies = channel.queue_declare("", exclusive=True).method.queue
            channel.basic_publish(
                contract.CONTROL_EXCHANGE,
                "",
                json.dumps({"command": command, "target": target}).encode(),
                pika.BasicProperties(reply_to=replies, correlation_id="t"),
            )
            found = []
            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline:
                method, _props, body = channel.basic_get(replies, auto_ack=True)
                if method is None:
                    time.sleep(0.05)
                    continue
                found.append(json.loads(body))
            return found
        finally:
            conn.close()

    def consumers(self) -> int:
        return int(self.queue(contract.ACTIONS_QUEUE).get("consumers", -1))

    def taker_state(self, taker_id: str) -> dict[str, Any]:
        return dict(self.http.get(f"{self.records()[taker_id].url}/state", timeout=5).json())

    def likes_metric(self, name: str, **labels: str) -> float:
        """One sample of the likes service's /metrics (0 when absent)."""
        text_ = self.http.get(f"{self.settings.likes_url}/metrics", timeout=5).text
        want = name + (
            "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else ""
        )
        for line in text_.splitlines():
            if line.startswith(want + " "):
                return float(line.split()[-1])
        return 0.0

    def publish(self, messages: Iterable[tuple[bytes, pika.BasicProperties]]) -> None:
        """Publish raw messages to the actions exchange, each confirmed."""
        conn = self.connect()
        try:
            channel = conn.channel()
            channel.confirm_delivery()
            for body, props in messages:
                channel.basic_publish(
                    contract.ACTIONS_EXCHANGE, contract.ACTIONS_ROUTING_KEY, body, props
                )
        finally:
            conn.close()

    def dead_letters(self) -> list[tuple[str, dict[str, Any]]]:
        """(message id, headers) of every DLQ message, duplicates included (read without
        acking: they go back to the DLQ when we disconnect)."""
        conn = self.connect()
        try:
            channel = conn.channel()
            found = []
            while True:
                method, props, _body = channel.basic_get(contract.DLQ_QUEUE, auto_ack=False)
                if method is None:
                    return found
                found.append((props.message_id, dict(props.headers or {})))
        finally:
            conn.close()

    def take_all(self, queue: str = contract.ACTIONS_QUEUE) -> list[tuple[str, int]]:
        """Consume and ack every ready message: (message id, x-delivery-count) each."""
        conn = self.connect()
        try:
            channel = conn.channel()
            found = []
            while True:
                method, props, _body = channel.basic_get(queue, auto_ack=True)
                if method is None:
                    return found
                count = int((props.headers or {}).get("x-delivery-count", 0) or 0)
                found.append((props.message_id, count))
        finally:
            conn.close()

    # -- likes store ------------------------------------------------------------------
    def stored(self, request_ids: Iterable[str]) -> dict[str, int]:
        """request_id -> how many rows carry it, for the given ids."""
        ids = list(request_ids)
        counts: dict[str, int] = {}
        with self._engine.connect() as conn:
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                params = {f"r{j}": rid for j, rid in enumerate(chunk)}
                marks = ", ".join(f":r{j}" for j in range(len(chunk)))
                for rid, n in conn.execute(
                    text(
                        f"SELECT request_id, count(*) FROM likes WHERE request_id IN ({marks}) "
                        "GROUP BY request_id"
                    ),
                    params,
                ):
                    counts[rid] = n
        return counts

    def stored_at(self, request_ids: Iterable[str]) -> dict[str, tuple[datetime, datetime]]:
        """request_id -> (received_at, stored_at): when the gateway took the like (its clock)
        and when its row was written (the likes service's clock), both UTC."""
        ids = list(request_ids)
        found: dict[str, tuple[datetime, datetime]] = {}
        with self._engine.connect() as conn:
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                params = {f"r{j}": rid for j, rid in enumerate(chunk)}
                marks = ", ".join(f":r{j}" for j in range(len(chunk)))
                for rid, received, stored in conn.execute(
                    text(
                        "SELECT request_id, received_at, stored_at FROM likes "
                        f"WHERE request_id IN ({marks})"
                    ),
                    params,
                ):
                    found[rid] = (_utc(received), _utc(stored))
        return found

    def rows_for_bot(self, bot_id: int) -> int:
        with self._engine.connect() as conn:
            return int(
                conn.execute(
                    text("SELECT count(*) FROM likes WHERE bot_id = :b"), {"b": bot_id}
                ).scalar_one()
            )

    def gateway_broker(self) -> str:
        """The gateway's publisher as its /healthz says: connected, disconnected, blocked."""
        try:
            resp = self.http.get(f"{self.settings.gateway_url}/healthz", timeout=5)
            return str(resp.json().get("broker", "?"))
        except (requests.RequestException, ValueError):
            return "unreachable"

    @contextmanager
    def store_write_locked(self) -> Iterator[None]:
        """Hold the likes store's write lock: the likes service's next transaction begins,
        then waits inside it (SQLite's busy timeout; PostgreSQL's lock queue: SHARE mode
        conflicts with the ROW EXCLUSIVE an INSERT takes) until the block ends."""
        if self._engine.dialect.name == "postgresql":
            with self._engine.connect() as locker, locker.begin() as tx:
                locker.exec_driver_sql("LOCK TABLE likes IN SHARE MODE")
                try:
                    yield
                finally:
                    tx.rollback()
            return
        path = self.settings.likes_store_url.removeprefix("sqlite:///")
        conn = sqlite3.connect(path, timeout=30, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()

    def wait_stored(self, request_ids: list[str], timeout: float = 90.0) -> dict[str, int]:
        deadline = time.monotonic() + timeout
        while True:
            counts = self.stored(request_ids)
            if len(counts) == len(set(request_ids)) or time.monotonic() > deadline:
                return counts
            time.sleep(0.5)

    # -- load -------------------------------------------------------------------------
    def population(self, *, users: int, posts: int, friday: bool = False) -> Population:
        return setup_population(
            self.settings.gateway_url,
            self.settings.auth_url,
            self.settings.admin_token(),
            users=users,
            posts=posts,
            friday=friday,
        )

    def load(self, pop: Population, **kw: Any) -> LoadReport:
        return asyncio.run(run_load(self.settings.gateway_url, pop, **kw))

    def load_in_background(self, pop: Population, **kw: Any) -> Callable[[], LoadReport]:
        result: dict[str, LoadReport] = {}
        thread = threading.Thread(target=lambda: result.update(r=self.load(pop, **kw)))
        thread.start()

        def join() -> LoadReport:
            thread.join()
            return result["r"]

        return join


def start_stack(state_dir: Path, **kw: Any) -> RunningStack:
    settings = StackSettings(state_dir=state_dir, ports=free_ports(kw.get("nodes", 1)), **kw)
    settings, _rows = supervisor.up(settings)
    return RunningStack(settings)


def assert_all_gone(pids: set[int]) -> None:
    alive = [
        p
        for p in pids
        if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
    ]
    assert not alive, f"processes of ours still running after stack down: {alive}"


def wait_for(check: Callable[[], Any], timeout: float = 30.0, interval: float = 0.3) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def fill_queue(
    amqp_url: str,
    queue: str,
    count: int,
    *,
    bot_every: int = 10,
    bot_id: int = 4242,
    declare: bool = True,
    batch: int = 500,
) -> dict[str, int | None]:
    """Publish `count` contract-shaped likes to `queue` (quorum) in transactions of `batch`.

    Every `bot_every`-th message comes from bot `bot_id` (0: none). Returns message id → bot.
    """
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    ch = conn.channel()
    if declare:
        ch.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
    ch.tx_select()
    ids: dict[str, int | None] = {}
    for i in range(count):
        bot = bot_id if bot_every and i % bot_every == 0 else None
        msg = contract.new_like(post_id=1 + i % 50, actor=contract.Actor(1000 + i % 97, bot))
        ch.basic_publish("", queue, msg.body(), msg.properties())
        ids[msg.request_id] = bot
        if (i + 1) % batch == 0:
            ch.tx_commit()
    ch.tx_commit()
    conn.close()
    return ids


def drain_ids(amqp_url: str, queue: str) -> list[str]:
    """Consume a whole queue (acking), returning message ids in order, duplicates included."""
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    ch = conn.channel()
    ch.basic_qos(prefetch_count=2000)
    ids: list[str] = []
    last = acked = 0
    for method, props, _body in ch.consume(queue, inactivity_timeout=1.5):
        if method is None:
            break
        ids.append(props.message_id)
        last = method.delivery_tag
        if len(ids) % 1000 == 0:
            ch.basic_ack(last, multiple=True)
            acked = last
    if last > acked:
        ch.basic_ack(last, multiple=True)
    ch.cancel()
    conn.close()
    return ids


@dataclasses.dataclass
class MixedBatch:
    """One message for each outcome a batch can hold, and what each must become."""

    messages: list[tuple[bytes, pika.BasicProperties]]
    stored: list[str]  # request ids that must end as exactly one row each (all acked)
    refused: dict[str, str]  # message id -> the likes service's verdict (likker-failure)


def mixed_batch(stack: RunningStack, pop: Population) -> MixedBatch:
    """Stored, duplicate (twice: of a stored row, and a twin in the batch), forbidden,
    unknown post, not JSON, and JSON that is not a like. `pop` must be a friday population."""
    assert pop.bot is not None and pop.target_post is not None and pop.banned_user_id
    user, other = pop.users[0], pop.users[1]
    earlier = stack.like(pop.posts[0], user.token).json()["request_id"]
    assert stack.wait_stored([earlier]) == {earlier: 1}
    again = contract.LikeMessage(
        earlier, pop.posts[0], contract.Actor(user.user_id), "2026-01-01T00:00:00+00:00"
    )
    fresh = contract.new_like(pop.posts[1], contract.Actor(user.user_id))
    twin = contract.new_like(pop.posts[2], contract.Actor(other.user_id))
    forbidden = contract.new_like(
        pop.target_post, contract.Actor(pop.banned_user_id, pop.bot.bot_id)
    )
    unknown = contract.new_like(10**9, contract.Actor(user.user_id))

    def raw(body: bytes) -> tuple[str, tuple[bytes, pika.BasicProperties]]:
        mid = str(uuid.uuid4())
        props = pika.BasicProperties(
            content_type="application/json", delivery_mode=2, message_id=mid
        )
        return mid, (body, props)

    not_json_id, not_json = raw(b"{not json")
    not_a_like_id, not_a_like = raw(b'{"request_id": "nope", "post_id": 1}')
    return MixedBatch(
        messages=[
            (fresh.body(), fresh.properties()),
            (again.body(), again.properties()),
            (twin.body(), twin.properties()),
            (forbidden.body(), forbidden.properties()),
            not_json,
            (twin.body(), twin.properties()),
            (unknown.body(), unknown.properties()),
            not_a_like,
        ],
        stored=[fresh.request_id, earlier, twin.request_id],
        refused={
            forbidden.request_id: "forbidden",
            unknown.request_id: "not-found",
            not_json_id: "invalid",
            not_a_like_id: "invalid",
        },
    )
