"""A small foreign application for the acceptance test: a Celery app with a poison task.

`app.poison` rejects its message with requeue every time (the Friday loop, in another
vocabulary); `app.resize` succeeds and appends its task id to a file. Configured from the
environment so the test can start its worker on the stack's broker, on a queue of its own.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from celery import Celery
from celery.exceptions import Reject
from kombu import Queue

QUEUE = os.environ.get("TRIAGE_QUEUE", "triage.jobs")
DONE = Path(os.environ.get("TRIAGE_DONE_FILE", "/dev/null"))

app = Celery("triage", broker=os.environ.get("TRIAGE_BROKER_URL", "amqp://"))
app.conf.update(
    task_queues=[Queue(QUEUE, queue_arguments={"x-queue-type": "quorum"})],
    task_default_queue=QUEUE,
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="app.poison")
def poison(n: int) -> None:
    raise Reject(f"poison {n}", requeue=True)


@app.task(name="app.resize", bind=True)
def resize(self: object, n: int) -> int:
    time.sleep(0.02)  # some work: the queue stays deep while the poison loops
    with DONE.open("a") as f:
        f.write(f"{self.request.id}\n")  # type: ignore[attr-defined]
    return n
