"""One actions taker process: consume, batch, pace, store through the likes service, settle.

Messages are gathered into batches (up to `batch` messages or `linger_s` after the first,
whichever comes first), sent to the likes service in one call, and each message is then
acked, requeued or dead-lettered on its own outcome (stack/taker/policy.py).

Pause/resume arrive on the `likker.control` fanout (DESIGN §4); a paused taker cancels its
consumer, so it disappears from the queue's consumers. Its state is visible three ways:
`GET /state` and `/metrics` on its own port, and a `status` request on the control exchange
(answered to the request's reply_to).

Control runs on its own connection and thread. On the consuming connection it starved: in a
requeue storm the broker hands each nacked message straight back, pika keeps dispatching the
actions channel's deliveries, and a pause sat unread behind them, exactly when it is needed.
The control thread records what is wanted; the consuming thread applies it between messages
(or within half a second when idle) and the control thread answers once it is applied.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import statistics
import threading
import time
from collections import Counter as Tally
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pika
import requests
from pika.adapters.blocking_connection import BlockingChannel
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app

from likkerctl.core import contract
from likkerctl.core.contract.nodes import Backoff, Nodes
from stack import topology
from stack.likes.limits import BATCH_PATH, MAX_BATCH_BYTES, MAX_LIKE_BYTES
from stack.taker.batching import Batch, Pacer
from stack.taker.policy import Kind, batch_outcomes, decide

log = logging.getLogger("likker.taker")


@dataclass
class TakerConfig:
    taker_id: str
    amqp_url: str
    likes_url: str
    retry_policy: str = "classified"
    rate: float = 500.0  # messages/s; 0 = unpaced
    batch: int = 100  # messages per call to the likes service, at most
    linger_s: float = 0.005  # how long the first message of a batch waits for company
    prefetch: int = 200
    max_retries: int = 5
    backoff_s: float = 0.2
    backoff_max_s: float = 5.0
    quorum_members: int | None = None  # replicas of the queues it declares (one per node)


# Recent batches kept for /state: enough for 10 s at a few thousand messages/s.
_RECENT_BATCHES = 2000
_RECENT_S = 10.0


@dataclass
class TakerState:
    taker_id: str
    retry_policy: str
    rate_limit: float
    batch_limit: int = 1
    linger_ms: float = 0.0
    paused: bool = False
    connected: bool = False
    processed: int = 0
    batches: int = 0
    storing: int = 0  # messages of the batch the likes service is storing now
    outcomes: Tally[str] = field(default_factory=Tally)
    failures: Tally[str] = field(default_factory=Tally)
    started_at: float = field(default_factory=time.time)
    # When the oldest message held now (gathering or being stored) reached the gateway.
    holding_since: float | None = None
    _window: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=30))
    # (monotonic time, messages, seconds the likes service took, oldest message's age)
    _recent: deque[tuple[float, int, float, float | None]] = field(
        default_factory=lambda: deque(maxlen=_RECENT_BATCHES)
    )

    def note_progress(self) -> None:
        now = time.monotonic()
        if not self._window or now - self._window[-1][0] >= 1.0:
            self._window.append((now, self.processed))

    def note_batch(self, size: int, store_s: float, lag_s: float | None) -> None:
        self.batches += 1
        self._recent.append((time.monotonic(), size, store_s, lag_s))

    def rate(self) -> float:
        """Messages per second over the last ~10 s."""
        now = time.monotonic()
        recent = [(t, n) for t, n in self._window if now - t <= 10.0]
        if not recent:
            return 0.0
        t0, n0 = recent[0]
        return (self.processed - n0) / max(now - t0, 1.0)

    def lag_s(self) -> float:
        """Age of the oldest message this taker holds; between batches, the age the last
        batch's oldest had when it went to the store; 0 once idle for 5 s."""
        since = self.holding_since
        if since is not None:
            return max(0.0, time.time() - since)
        last = self._recent[-1] if self._recent else None
        if last is not None and last[3] is not None and time.monotonic() - last[0] < 5.0:
            return last[3]
        return 0.0

    def recent_batches(self) -> dict[str, float | None]:
        """Mean batch size and median store time over the last 10 s (None: no batch)."""
        now = time.monotonic()
        recent = [b for b in list(self._recent) if now - b[0] <= _RECENT_S]
        if not recent:
            return {"batch_size": None, "store_ms": None}
        return {
            "batch_size": round(sum(b[1] for b in recent) / len(recent), 1),
            "store_ms": round(statistics.median(b[2] for b in recent) * 1000, 1),
        }

    def as_json(self) -> dict[str, Any]:
        return {
            "taker_id": self.taker_id,
            "state": "paused" if self.paused else ("running" if self.connected else "disconnected"),
            "paused": self.paused,
            "connected": self.connected,
            "retry_policy": self.retry_policy,
            "rate_limit": self.rate_limit,
            "batch_limit": self.batch_limit,
            "linger_ms": self.linger_ms,
            "processed": self.processed,
            "batches": self.batches,
            "storing": self.storing,
            "rate": round(self.rate(), 1),
            **self.recent_batches(),
            "lag_s": round(self.lag_s(), 3),
            "outcomes": dict(self.outcomes),
            "failures": dict(self.failures),
            "pid": os.getpid(),
            "started_at": self.started_at,
        }


@dataclass
class Held:
    """A delivered message waiting in a batch, and what will be sent for it."""

    tag: int
    props: pika.BasicProperties
    body: bytes
    item: bytes | None  # its JSON item in the batch; None: too large to send
    received_at: float | None  # when it reached the gateway (epoch seconds), if known


def batch_item(body: bytes) -> tuple[bytes | None, float | None]:
    """The JSON a message becomes in a batch, and when the gateway received it.

    A JSON body goes verbatim; anything else goes as a JSON string of its text, so the likes
    service's parser names what is wrong with it as that item's outcome. A body over the
    service's limit for one like is not sent (None).
    """
    if len(body) > MAX_LIKE_BYTES:
        return None, None
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return json.dumps(body.decode("utf-8", "replace")).encode(), None
    received = data.get("received_at") if isinstance(data, dict) else None
    try:
        return body, datetime.fromisoformat(received).timestamp() if received else None
    except (TypeError, ValueError):
        return body, None


class Taker:
    def __init__(self, config: TakerConfig, registry: CollectorRegistry | None = None) -> None:
        self.config = config
        self.state = TakerState(
            config.taker_id,
            config.retry_policy,
            config.rate,
            batch_limit=config.batch,
            linger_ms=config.linger_s * 1000,
        )
        self.registry = registry or CollectorRegistry()
        labels = {"taker": config.taker_id}
        self._m_messages = Counter(
            "likker_taker_messages",
            "Messages handled, by outcome",
            ["taker", "outcome"],
            registry=self.registry,
        )
        self._m_decisions = Counter(
            "likker_taker_decisions",
            "What was done with messages",
            ["taker", "decision"],
            registry=self.registry,
        )
        self._m_redelivered = Counter(
            "likker_taker_redelivered",
            "Messages that arrived redelivered",
            ["taker"],
            registry=self.registry,
        ).labels(**labels)
        paused = Gauge("likker_taker_paused", "1 while paused", ["taker"], registry=self.registry)
        paused.labels(**labels).set_function(lambda: float(self.state.paused))
        connected = Gauge(
            "likker_taker_connected",
            "1 while connected to the broker",
            ["taker"],
            registry=self.registry,
        )
        connected.labels(**labels).set_function(lambda: float(self.state.connected))
        self._m_batch_size = Histogram(
            "likker_taker_batch_size",
            "Messages per call to the likes service",
            ["taker"],
            registry=self.registry,
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
        ).labels(**labels)
        self._m_store_seconds = Histogram(
            "likker_taker_store_seconds",
            "Time of one call to the likes service (a batch stored, or refused)",
            ["taker"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
        ).labels(**labels)
        lag = Gauge(
            "likker_taker_lag_seconds",
            "Age of the oldest message the taker holds or last sent to the store",
            ["taker"],
            registry=self.registry,
        )
        lag.labels(**labels).set_function(self.state.lag_s)
        self._m_children: dict[tuple[str, str], tuple[Any, Any]] = {}
        self._http = requests.Session()
        # The likes service limits a batch's bytes too; keep a margin for the JSON around items.
        self._batch: Batch[Held] = Batch(config.batch, config.linger_s, MAX_BATCH_BYTES // 2)
        self._pacer = Pacer(config.rate)
        self._nodes = Nodes(config.amqp_url, config.taker_id, log)
        self._stop = threading.Event()
        self._channel: BlockingChannel | None = None
        self._publish_channel: BlockingChannel | None = None
        self._conn: pika.BlockingConnection | None = None
        self._consumer_tag: str | None = None
        # Set by the control thread, applied by the consuming thread (pika is not thread-safe).
        self._want_paused: bool | None = None
        self._applied = threading.Event()

    # -- life cycle ------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        threading.Thread(target=self._control_loop, name="control", daemon=True).start()
        backoff = Backoff(0.5, 5.0)
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                self._session()
            except (pika.exceptions.AMQPError, OSError) as exc:
                log.warning("%s: broker connection lost: %s", self.config.taker_id, exc)
            self.state.connected = False
            self._consumer_tag = None
            # The paused/running state is kept: the next session consumes only if running.
            if time.monotonic() - began > 5.0:
                backoff.reset()  # it had been working: another node soon
            if not self._stop.is_set():
                self._stop.wait(backoff.next())

    def _session(self) -> None:
        conn = self._conn = self._nodes.connect()
        try:
            channel = conn.channel()
            topology.declare(channel, self.config.quorum_members)
            channel.basic_qos(prefetch_count=self.config.prefetch)
            publish_channel = conn.channel()
            publish_channel.confirm_delivery()
            self._channel, self._publish_channel = channel, publish_channel
            self.state.connected = True
            if not self.state.paused:
                self._consume()
            log.info("%s: connected (%s)", self.config.taker_id, self.config.retry_policy)
            while not self._stop.is_set():
                self._apply_control()
                if self._batch.due(time.monotonic()):
                    self._flush()
                    continue
                conn.process_data_events(time_limit=self._batch.wait_s(time.monotonic(), 0.5))
        finally:
            # What was gathered belongs to this channel: the broker requeues it on close.
            self._batch.take()
            self.state.holding_since = None
            if conn.is_open:
                conn.close()  # unacked messages go back to the queue

    def _consume(self) -> None:
        if self._channel is not None and self._consumer_tag is None:
            self._consumer_tag = self._channel.basic_consume(
                contract.ACTIONS_QUEUE, self._on_message
            )

    def _cancel(self) -> None:
        if self._channel is not None and self._consumer_tag is not None:
            # pika nacks (requeues) prefetched messages not yet handed to _on_message.
            self._channel.basic_cancel(self._consumer_tag)
            self._consumer_tag = None

    # -- control ---------------------------------------------------------------------
    def _control_loop(self) -> None:
        nodes = Nodes(self.config.amqp_url, f"{self.config.taker_id} control", log)
        backoff = Backoff(0.5, 5.0)
        while not self._stop.is_set():
            try:
                conn = nodes.connect()
            except (pika.exceptions.AMQPError, OSError) as exc:
                log.warning("%s: control connection failed: %s", self.config.taker_id, exc)
                self._stop.wait(backoff.next())
                continue
            backoff.reset()
            try:
                ch = conn.channel()
                queue = ch.queue_declare("", exclusive=True, auto_delete=True).method.queue
                ch.queue_bind(queue, contract.CONTROL_EXCHANGE)
                ch.basic_consume(queue, self._on_control, auto_ack=True)
                while not self._stop.is_set():
                    conn.process_data_events(time_limit=0.5)
            except (pika.exceptions.AMQPError, OSError) as exc:
                log.warning("%s: control connection lost: %s", self.config.taker_id, exc)
            finally:
                if conn.is_open:
                    conn.close()

    def _on_control(
        self, channel: BlockingChannel, _method: Any, props: pika.BasicProperties, body: bytes
    ) -> None:
        try:
            command = json.loads(body)
            verb = command["command"]
            target = command.get("target", "*")
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring malformed control message %r", body[:200])
            return
        if target not in ("*", self.config.taker_id):
            return
        if verb in ("pause", "resume"):
            self._applied.clear()
            self._want_paused = verb == "pause"
            # Applied by the consuming thread between messages; answer once it is.
            if not self._applied.wait(timeout=5.0):
                log.warning("%s: %s not applied within 5 s", self.config.taker_id, verb)
        elif verb != "status":
            log.warning("ignoring unknown control command %r", verb)
            return
        if props.reply_to:
            channel.basic_publish(
                "",
                props.reply_to,
                json.dumps(self.state.as_json()).encode(),
                pika.BasicProperties(
                    correlation_id=props.correlation_id, content_type="application/json"
                ),
            )

    def _apply_control(self) -> None:
        """On the consuming thread: make the consumer match what control asked for."""
        want = self._want_paused
        if want is not None and want != self.state.paused:
            self.state.paused = want
            if want:
                self._cancel()
                self._return_gathered()
            else:
                self._consume()
            log.info("%s: %s", self.config.taker_id, "paused" if want else "resumed")
        if want is not None:
            self._applied.set()

    # -- messages --------------------------------------------------------------------
    def _on_message(
        self, channel: BlockingChannel, method: Any, props: pika.BasicProperties, body: bytes
    ) -> None:
        self._apply_control()
        if self.state.paused:
            # Delivered before our cancel took effect: back to the queue untouched.
            channel.basic_nack(method.delivery_tag, requeue=True)
            return
        if method.redelivered:
            self._m_redelivered.inc()
        item, received_at = batch_item(body)
        if received_at is None and props.timestamp:
            received_at = float(props.timestamp)  # whole seconds, but better than nothing
        nbytes = len(item) + 1 if item is not None else 0
        if not self._batch.fits(nbytes):
            self._flush()
        self._batch.add(
            Held(method.delivery_tag, props, body, item, received_at), nbytes, time.monotonic()
        )
        if received_at is not None:
            since = self.state.holding_since
            self.state.holding_since = received_at if since is None else min(since, received_at)
        if self._batch.full:
            self._flush()

    def _return_gathered(self) -> None:
        """Paused: messages gathered but not yet sent go back to the queue untouched."""
        held = self._batch.take()
        self.state.holding_since = None
        if self._channel is not None:
            for h in held:
                self._channel.basic_nack(h.tag, requeue=True)

    def _deliver(self, held: list[Held]) -> list[tuple[Kind, str]]:
        """One call to the likes service for the batch: each message's (kind, detail)."""
        items = [h.item for h in held if h.item is not None]
        answers: list[tuple[Kind, str]] = []
        if items:
            try:
                resp = self._http.post(
                    f"{self.config.likes_url}{BATCH_PATH}",
                    data=b'{"likes":[' + b",".join(items) + b"]}",
                    headers={"Content-Type": "application/json"},
                    timeout=(2.0, 30.0),
                )
                try:
                    payload = resp.json()
                except ValueError:
                    payload = None
                answers = batch_outcomes(resp.status_code, payload, len(items))
            except requests.RequestException as exc:
                why = f"likes service unreachable: {type(exc).__name__}"
                answers = [("transient", why)] * len(items)
        sent = iter(answers)
        too_large: tuple[Kind, str] = ("invalid", f"body over {MAX_LIKE_BYTES} bytes")
        return [next(sent) if h.item is not None else too_large for h in held]

    def _flush(self) -> None:
        """Store the gathered batch, then settle each message on its own outcome."""
        held = self._batch.take()
        channel = self._channel
        if not held or channel is None:
            return
        wait = self._pacer.delay(len(held), time.monotonic())
        if wait > 0:
            time.sleep(wait)  # the read-rate ceiling (--taker-rate), counted in messages
        oldest = min((h.received_at for h in held if h.received_at is not None), default=None)
        lag = max(0.0, time.time() - oldest) if oldest is not None else None
        started = time.monotonic()
        self.state.storing = len(held)
        try:
            answers = self._deliver(held)
        finally:
            self.state.storing = 0
        store_s = time.monotonic() - started
        acked: list[bool] = []
        requeue: list[Held] = []
        backoff = 0.0
        for h, (kind, detail) in zip(held, answers, strict=True):
            headers = h.props.headers or {}
            decision = decide(
                self.config.retry_policy,
                kind,
                delivery_count=int(headers.get("x-delivery-count", 0) or 0),
                max_retries=self.config.max_retries,
                backoff_s=self.config.backoff_s,
                backoff_max_s=self.config.backoff_max_s,
            )
            # Dead letters are published (and confirmed) before anything is acked.
            ack = decision.verb == "ack" or (
                decision.verb == "dead-letter"
                and self._dead_letter(h.props, h.body, decision.reason or kind, detail)
            )
            acked.append(ack)
            if not ack:
                requeue.append(h)
                backoff = max(backoff, decision.backoff_s)
            self.state.outcomes[kind] += 1
            if kind not in ("stored", "duplicate"):
                self.state.failures[kind] += 1
            self._count(kind, decision.verb)
        self._ack(channel, held, acked)
        # Then one wait for the batch, the longest backoff any of its requeued messages asks
        # for (a wait per message would add them up), then the requeues.
        if backoff:
            time.sleep(backoff)
        for h in requeue:
            channel.basic_nack(h.tag, requeue=True)
        self.state.processed += len(held)
        self.state.holding_since = None
        self.state.note_batch(len(held), store_s, lag)
        self.state.note_progress()
        self._m_batch_size.observe(len(held))
        self._m_store_seconds.observe(store_s)

    def _ack(self, channel: BlockingChannel, held: list[Held], acked: list[bool]) -> None:
        """Ack exactly the messages marked so, with as few frames as that allows.

        Every delivery before this batch is settled already (batches are settled in order,
        oldest first), so one `multiple` ack up to the end of the batch's leading run of
        acks settles exactly that run; the others are acked one by one. pika flushes the
        socket on every ack, which was a third of a taker's time one at a time.
        """
        run = next((i for i, ack in enumerate(acked) if not ack), len(acked))
        if run:
            channel.basic_ack(held[run - 1].tag, multiple=True)
        for h, ack in zip(held[run:], acked[run:], strict=True):
            if ack:
                channel.basic_ack(h.tag)

    def _count(self, kind: str, verb: str) -> None:
        children = self._m_children.get((kind, verb))
        if children is None:  # labels() costs more than the increment: resolve each pair once
            children = (
                self._m_messages.labels(self.config.taker_id, kind),
                self._m_decisions.labels(self.config.taker_id, verb),
            )
            self._m_children[(kind, verb)] = children
        children[0].inc()
        children[1].inc()

    def _dead_letter(
        self, props: pika.BasicProperties, body: bytes, reason: str, detail: str
    ) -> bool:
        headers = dict(props.headers or {})
        headers[contract.H_FAILURE] = reason
        headers[contract.H_FAILURE_DETAIL] = detail
        dl_props = pika.BasicProperties(
            content_type=props.content_type,
            delivery_mode=2,
            message_id=props.message_id,
            timestamp=props.timestamp,
            headers=headers,
        )
        assert self._publish_channel is not None
        try:
            self._publish_channel.basic_publish(
                contract.DLX_EXCHANGE, contract.ACTIONS_ROUTING_KEY, body, dl_props, mandatory=True
            )
            return True
        except (pika.exceptions.UnroutableError, pika.exceptions.NackError) as exc:
            log.error("dead-lettering %s failed, requeueing: %s", props.message_id, exc)
            if isinstance(exc, pika.exceptions.NackError):
                self._reopen_publish_channel()
            return False

    def _reopen_publish_channel(self) -> None:
        """A channel nacked once may nack on for minutes after a quorum queue's leader
        changed (RabbitMQ 3.10, stack/gateway/publisher.py); a new one is confirmed."""
        old, conn = self._publish_channel, self._conn
        if conn is None or not conn.is_open:
            return
        channel = conn.channel()
        channel.confirm_delivery()
        self._publish_channel = channel
        if old is not None and old.is_open:
            old.close()


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve_state(taker: Taker, host: str, port: int) -> WSGIServer:
    """/metrics, /healthz and /state of a taker, on a background thread."""
    metrics_app = make_wsgi_app(taker.registry)

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return metrics_app(environ, start_response)
        if path in ("/state", "/healthz"):
            payload = taker.state.as_json()
            if path == "/healthz":
                payload = {"status": "ok" if taker.state.connected else "degraded", **payload}
            start_response("200 OK", [("Content-Type", "application/json")])
            return [json.dumps(payload).encode()]
        start_response("404 Not Found", [("Content-Type", "application/json")])
        return [b'{"error": "not-found", "detail": "no such path"}']

    server = make_server(host, port, app, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="state-http", daemon=True).start()
    return server


def run(config: TakerConfig, host: str, port: int) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    taker = Taker(config)
    serve_state(taker, host, port)
    signal.signal(signal.SIGTERM, lambda *_: taker.stop())
    signal.signal(signal.SIGINT, lambda *_: taker.stop())
    taker.run()
