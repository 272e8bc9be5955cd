"""One actions taker process: consume, pace, deliver to the likes service, ack/requeue/dead-letter.

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
import threading
import time
from collections import Counter as Tally
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pika
import requests
from pika.adapters.blocking_connection import BlockingChannel
from prometheus_client import CollectorRegistry, Counter, Gauge, make_wsgi_app

from likkerctl.core import contract
from stack import topology
from stack.taker.policy import Kind, classify_status, decide

log = logging.getLogger("likker.taker")


@dataclass
class TakerConfig:
    taker_id: str
    amqp_url: str
    likes_url: str
    retry_policy: str = "classified"
    rate: float = 500.0  # messages/s; 0 = unpaced
    prefetch: int = 50
    max_retries: int = 5
    backoff_s: float = 0.2
    backoff_max_s: float = 5.0


@dataclass
class TakerState:
    taker_id: str
    retry_policy: str
    rate_limit: float
    paused: bool = False
    connected: bool = False
    processed: int = 0
    outcomes: Tally[str] = field(default_factory=Tally)
    failures: Tally[str] = field(default_factory=Tally)
    started_at: float = field(default_factory=time.time)
    _window: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=30))

    def note_progress(self) -> None:
        now = time.monotonic()
        if not self._window or now - self._window[-1][0] >= 1.0:
            self._window.append((now, self.processed))

    def rate(self) -> float:
        """Messages per second over the last ~10 s."""
        now = time.monotonic()
        recent = [(t, n) for t, n in self._window if now - t <= 10.0]
        if not recent:
            return 0.0
        t0, n0 = recent[0]
        return (self.processed - n0) / max(now - t0, 1.0)

    def as_json(self) -> dict[str, Any]:
        return {
            "taker_id": self.taker_id,
            "state": "paused" if self.paused else ("running" if self.connected else "disconnected"),
            "paused": self.paused,
            "connected": self.connected,
            "retry_policy": self.retry_policy,
            "rate_limit": self.rate_limit,
            "processed": self.processed,
            "rate": round(self.rate(), 1),
            "outcomes": dict(self.outcomes),
            "failures": dict(self.failures),
            "pid": os.getpid(),
            "started_at": self.started_at,
        }


class Taker:
    def __init__(self, config: TakerConfig, registry: CollectorRegistry | None = None) -> None:
        self.config = config
        self.state = TakerState(config.taker_id, config.retry_policy, config.rate)
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
        self._http = requests.Session()
        self._stop = threading.Event()
        self._channel: BlockingChannel | None = None
        self._publish_channel: BlockingChannel | None = None
        self._consumer_tag: str | None = None
        self._next_slot = 0.0
        # Set by the control thread, applied by the consuming thread (pika is not thread-safe).
        self._want_paused: bool | None = None
        self._applied = threading.Event()

    # -- life cycle ------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        threading.Thread(target=self._control_loop, name="control", daemon=True).start()
        while not self._stop.is_set():
            try:
                self._session()
            except pika.exceptions.AMQPError as exc:
                log.warning("%s: broker connection lost: %s", self.config.taker_id, exc)
            self.state.connected = False
            self._consumer_tag = None
            if not self._stop.is_set():
                self._stop.wait(1.0)

    def _session(self) -> None:
        conn = pika.BlockingConnection(pika.URLParameters(self.config.amqp_url))
        try:
            channel = conn.channel()
            topology.declare(channel)
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
                conn.process_data_events(time_limit=0.5)
        finally:
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
        while not self._stop.is_set():
            try:
                conn = pika.BlockingConnection(pika.URLParameters(self.config.amqp_url))
            except pika.exceptions.AMQPError as exc:
                log.warning("%s: control connection failed: %s", self.config.taker_id, exc)
                self._stop.wait(1.0)
                continue
            try:
                ch = conn.channel()
                queue = ch.queue_declare("", exclusive=True, auto_delete=True).method.queue
                ch.queue_bind(queue, contract.CONTROL_EXCHANGE)
                ch.basic_consume(queue, self._on_control, auto_ack=True)
                while not self._stop.is_set():
                    conn.process_data_events(time_limit=0.5)
            except pika.exceptions.AMQPError as exc:
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
            else:
                self._consume()
            log.info("%s: %s", self.config.taker_id, "paused" if want else "resumed")
        if want is not None:
            self._applied.set()

    # -- messages --------------------------------------------------------------------
    def _pace(self) -> None:
        if self.config.rate <= 0:
            return
        now = time.monotonic()
        if self._next_slot > now:
            time.sleep(self._next_slot - now)
        self._next_slot = max(self._next_slot, now) + 1.0 / self.config.rate

    def _deliver(self, body: bytes) -> tuple[Kind, str]:
        try:
            resp = self._http.post(
                f"{self.config.likes_url}/v1/likes",
                data=body,
                headers={"Content-Type": "application/json"},
                timeout=(2.0, 10.0),
            )
        except requests.RequestException as exc:
            return "transient", f"likes service unreachable: {type(exc).__name__}"
        kind = classify_status(resp.status_code)
        detail = ""
        if kind not in ("stored", "duplicate"):
            try:
                detail = str(resp.json().get("detail", ""))[:300]
            except ValueError:
                detail = f"HTTP {resp.status_code}"
        return kind, detail

    def _on_message(
        self, channel: BlockingChannel, method: Any, props: pika.BasicProperties, body: bytes
    ) -> None:
        self._apply_control()
        if self.state.paused:
            # Delivered before our cancel took effect: back to the queue untouched.
            channel.basic_nack(method.delivery_tag, requeue=True)
            return
        self._pace()
        if method.redelivered:
            self._m_redelivered.inc()
        kind, detail = self._deliver(body)
        headers = props.headers or {}
        decision = decide(
            self.config.retry_policy,
            kind,
            delivery_count=int(headers.get("x-delivery-count", 0) or 0),
            max_retries=self.config.max_retries,
            backoff_s=self.config.backoff_s,
            backoff_max_s=self.config.backoff_max_s,
        )
        if decision.verb == "ack":
            channel.basic_ack(method.delivery_tag)
        elif decision.verb == "requeue":
            if decision.backoff_s:
                time.sleep(decision.backoff_s)
            channel.basic_nack(method.delivery_tag, requeue=True)
        elif self._dead_letter(props, body, decision.reason or kind, detail):
            channel.basic_ack(method.delivery_tag)  # only after the DLQ confirmed its copy
        else:
            channel.basic_nack(method.delivery_tag, requeue=True)
        self.state.processed += 1
        self.state.outcomes[kind] += 1
        if kind not in ("stored", "duplicate"):
            self.state.failures[kind] += 1
        self.state.note_progress()
        self._m_messages.labels(self.config.taker_id, kind).inc()
        self._m_decisions.labels(self.config.taker_id, decision.verb).inc()

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
            return False


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
