"""Test helpers: a running stack on free ports, its database, its broker's HTTP API."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pika
import psutil
import requests
from sqlalchemy import create_engine, text

from stack import procs, supervisor
from stack.load import LoadReport, Population, run_load, setup_population
from stack.settings import Ports, StackSettings


def _utc(value: str | datetime) -> datetime:
    # SQLite keeps SQLAlchemy's DateTime as naive ISO text, written in UTC.
    when = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def free_ports() -> Ports:
    return Ports(
        **{f.name: procs.free_port() for f in dataclasses.fields(Ports) if f.name != "taker_base"},
        taker_base=procs.free_port(block=8) - 1,  # taker-N listens on taker_base + N
    )


class RunningStack:
    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self.http = requests.Session()
        self._engine = create_engine(settings.likes_store_url)

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
        resp = self.http.request(
            method,
            f"{self.settings.management_url}/api/{path}",
            auth=(self.settings.rabbit_user, self.settings.rabbit_password),
            timeout=10,
            **kw,
        )
        resp.raise_for_status()
        return resp.json() if resp.content else None

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
    settings = StackSettings(state_dir=state_dir, ports=free_ports(), **kw)
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
    from likkerctl.core import contract

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
