"""Acceptance with a real foreign application: a Celery worker with a poison task looping.

The poison task rejects with requeue forever while the other task succeeds. likkerctl,
knowing nothing of Celery, ranks the poison task first by `header.task`, and moves exactly
its messages aside while the worker's consumer is paused the application's own way
(Celery's cancel_consumer, as Flower does); resumed, the worker drains the rest.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pika
import pytest

from tests.helpers import RunningStack, wait_for
from tests.ops.conftest import Cli

ROOT = Path(__file__).resolve().parents[2]
POISON, GOOD = 20, 300


@dataclass
class Worker:
    queue: str
    name: str
    done: Path
    env: dict[str, str]

    def app(self):  # type: ignore[no-untyped-def]
        # Celery reads the environment when the app module is first imported.
        os.environ.update(self.env)
        from tests.ops import celery_app

        celery_app.app.conf.broker_url = self.env["TRIAGE_BROKER_URL"]
        return celery_app.app

    def done_ids(self) -> set[str]:
        return set(self.done.read_text().split()) if self.done.exists() else set()


@pytest.fixture
def worker(ops_stack: RunningStack, tmp_path: Path) -> Iterator[Worker]:
    tag = uuid.uuid4().hex[:8]
    queue, name = f"celery.{tag}", f"w{tag}@triage"
    env = {
        "TRIAGE_BROKER_URL": ops_stack.settings.amqp_url.split("?")[0],
        "TRIAGE_QUEUE": queue,
        "TRIAGE_DONE_FILE": str(tmp_path / "done"),
    }
    argv = [
        sys.executable, "-m", "celery", "-A", "tests.ops.celery_app", "worker",
        "-P", "solo", "-Q", queue, "-n", name, "--without-mingle", "--without-gossip",
        "-l", "warning",
    ]  # fmt: skip
    log = (tmp_path / "worker.log").open("w")
    proc = subprocess.Popen(
        argv, cwd=ROOT, env=os.environ | env, stdout=log, stderr=log, start_new_session=True
    )
    w = Worker(queue, name, tmp_path / "done", env)
    try:
        assert wait_for(lambda: _consumers(ops_stack, queue) == 1, 60), (
            tmp_path / "worker.log"
        ).read_text()[-2000:]
        yield w
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


def _consumers(stack: RunningStack, queue: str) -> int | None:
    conn = pika.BlockingConnection(pika.URLParameters(stack.settings.amqp_url))
    try:
        return int(conn.channel().queue_declare(queue, passive=True).method.consumer_count)
    except pika.exceptions.ChannelClosedByBroker:
        return None
    finally:
        if conn.is_open:
            conn.close()


def _task_ids(stack: RunningStack, queue: str) -> list[str]:
    """Celery task ids (header `id`) of a queue, read and returned."""
    conn = pika.BlockingConnection(pika.URLParameters(stack.settings.amqp_url))
    ch = conn.channel()
    ids, last = [], 0
    while True:
        method, props, _body = ch.basic_get(queue)
        if method is None:
            break
        ids.append(str(props.headers["id"]))
        last = method.delivery_tag
    if last:
        ch.basic_nack(last, multiple=True, requeue=True)
    conn.close()
    return ids


def test_top_ranks_the_poison_task_first_and_shovel_moves_exactly_its_messages(
    cli: Cli, ops_stack: RunningStack, worker: Worker
) -> None:
    app = worker.app()
    parked = f"{worker.queue}.parked"
    conn = pika.BlockingConnection(pika.URLParameters(ops_stack.settings.amqp_url))
    conn.channel().queue_declare(parked, durable=True)
    conn.close()
    poison = {app.send_task("app.poison", args=[n]).id for n in range(POISON)}
    good = {app.send_task("app.resize", args=[n]).id for n in range(GOOD)}
    # Let the loop turn: each poison message comes back again and again.
    assert wait_for(lambda: len(worker.done_ids()) >= 20, 30)

    ranked = cli("top", worker.queue, "--by", "header.task", "--json")
    assert ranked.rc == 0, ranked.stderr
    first, *rest = ranked.json["rows"]
    assert first["header.task"] == "app.poison" and first["redeliveries"] > 0
    assert [r["header.task"] for r in rest] == ["app.resize"] and rest[0]["redeliveries"] == 0

    # Pause the application's consumer its own way, then move the poison aside.
    app.control.cancel_consumer(worker.queue, destination=[worker.name], reply=True)
    assert wait_for(lambda: _consumers(ops_stack, worker.queue) == 0, 30)
    moved = cli(
        "shovel", worker.queue, parked, "--where", 'header.task = "app.poison"', "--yes", "--json"
    )
    assert moved.rc == 0, moved.stderr
    assert moved.json["engine"] == "broker"
    in_parked = _task_ids(ops_stack, parked)
    assert set(in_parked) == poison  # exactly the poison task's messages
    remaining = set(_task_ids(ops_stack, worker.queue))
    assert not remaining & poison and remaining <= good

    # Resumed, the worker drains the rest: every good task done, nothing lost.
    app.control.add_consumer(worker.queue, destination=[worker.name], reply=True)
    assert wait_for(lambda: worker.done_ids() >= good, 90), len(worker.done_ids())
    assert wait_for(lambda: _task_ids(ops_stack, worker.queue) == [], 30)
    assert set(_task_ids(ops_stack, parked)) == poison
