"""The client engine: likkerctl consumes, republishes with confirms, and acks in order.

Consume with a large prefetch, publish each message (to the destination, or back to the
source's tail when it does not match) with pipelined publisher confirms and mandatory
routing, ack the source in delivery order as confirms arrive. Predicates on anything
(delivery counts, absent headers, negations).
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import pika
import pika.exceptions
from pika.adapters.select_connection import SelectConnection
from pika.channel import Channel
from pika.spec import Basic

from likkerctl.core.contract.writes import coalesce_writes
from likkerctl.core.errors import Failed, LikkerError, NotFound, Unreachable
from likkerctl.core.messages.archive import record
from likkerctl.core.messages.fields import (
    H_MOVED_BY,
    H_MOVED_FROM,
    H_MOVED_TO,
    OPERATOR,
    Envelope,
)
from likkerctl.core.messages.predicate import NotJson, Predicate
from likkerctl.core.move.common import (
    FileSink,
    MoveResult,
    OriginSink,
    Progress,
    ProgressFn,
    QueueSink,
    Sink,
)
from likkerctl.core.profile import Profile, redact_url


class _ClientMove:
    """One run of the client engine on a pika SelectConnection (single-threaded)."""

    ACK_BATCH = 500
    TICK = 0.2

    def __init__(
        self,
        profile: Profile,
        source: str,
        sink: Sink,
        predicate: Predicate | None,
        limit: int | None,
        prefetch: int,
        idle_timeout: float,
        on_progress: ProgressFn | None,
    ) -> None:
        self.profile = profile
        self.source = source
        self.sink = sink
        self.predicate = predicate
        self.limit = limit
        self.prefetch = prefetch
        self.idle_timeout = idle_timeout
        self.on_progress = on_progress
        self.progress = Progress(total=0)
        self.conn: SelectConnection | None = None
        self.ch: Channel | None = None
        self.consumer_tag: str | None = None
        self.consuming = False
        self.done_consuming = False
        self.closing = False
        self.matched = 0
        self.returned = 0
        self.not_json = 0  # bodies a body-path predicate could not read: kept
        self.no_origin = 0  # OriginSink: messages naming no queue they came from: kept
        self.error: str | None = None
        self.error_kind: type[LikkerError] = Failed
        self.url = ""
        self.interrupted = False
        self.frozen = False  # after a return or nack: ack nothing more at the source
        # Delivery tags in delivery order, not yet acked at the source.
        self.order: deque[int] = deque()
        self.settled: set[int] = set()
        self.last_settled_tag = 0
        self.unacked_settled = 0
        # Publisher confirms in flight: (sequence number, delivery tag, kind).
        self.confirms: deque[tuple[int, int, str]] = deque()
        self.early: set[int] = set()
        self.seq = 0
        self.file_pending: list[int] = []
        self.last_delivery = time.monotonic()
        self.stop_requested = False
        self.deadline: float | None = None

    # -- connection life cycle ----------------------------------------------------------
    def run(self) -> None:
        # The first node of the profile that answers (a cluster with a node down still moves).
        urls = self.profile.amqp_nodes()
        for i, url in enumerate(urls):
            self.url = url
            params = pika.URLParameters(url)
            params.connection_attempts = 1
            params.socket_timeout = 5
            # A broker in a resource alarm blocks our publishes; give up rather than hang.
            params.blocked_connection_timeout = 60
            self.conn = SelectConnection(
                params,
                on_open_callback=self._on_open,
                on_open_error_callback=self._on_open_error,
                on_close_callback=self._on_closed,
            )
            self.conn.ioloop.call_later(self.TICK, self._tick)
            self.conn.ioloop.start()
            if not (self.error_kind is Unreachable and i + 1 < len(urls)):
                return
            self.error, self.error_kind = None, Failed  # never opened: the next node

    def _on_open(self, conn: SelectConnection) -> None:
        coalesce_writes(conn)
        conn.channel(on_open_callback=self._on_channel)

    def _on_open_error(self, _conn: SelectConnection, exc: BaseException) -> None:
        self.error = f"RabbitMQ unreachable at {redact_url(self.url)}: {exc!r}"
        self.error_kind = Unreachable
        assert self.conn is not None
        self.conn.ioloop.stop()

    def _on_closed(self, _conn: SelectConnection, reason: BaseException) -> None:
        if not self.closing and self.error is None:
            self.error = f"connection to RabbitMQ lost: {reason!r}"
        assert self.conn is not None
        self.conn.ioloop.stop()

    def _on_channel(self, ch: Channel) -> None:
        self.ch = ch
        ch.add_on_close_callback(self._on_channel_closed)
        ch.add_on_return_callback(self._on_return)
        ch.confirm_delivery(self._on_confirm)
        ch.queue_declare(self.source, passive=True, callback=self._on_declared)

    def _on_channel_closed(self, _ch: Channel, reason: BaseException) -> None:
        if not self.closing:
            if (
                isinstance(reason, pika.exceptions.ChannelClosedByBroker)
                and reason.reply_code == 404
            ):
                self.error = f"no queue {self.source!r}"
                self.error_kind = NotFound
            elif self.error is None:
                self.error = f"channel closed by the broker: {reason!r}"
        self._close()

    def _on_declared(self, frame: Any) -> None:
        assert self.ch is not None
        total = frame.method.message_count
        self.progress = Progress(total=total)
        if total == 0 or self.limit == 0:
            self._finish()
            return
        self.ch.basic_qos(
            prefetch_count=min(self.prefetch, total), callback=lambda _f: self._consume()
        )

    def _consume(self) -> None:
        assert self.ch is not None
        self.consuming = True
        self.last_delivery = time.monotonic()
        self.consumer_tag = self.ch.basic_consume(self.source, self._on_message)

    # -- messages -----------------------------------------------------------------------
    def _on_message(
        self, ch: Channel, method: Basic.Deliver, props: pika.BasicProperties, body: bytes
    ) -> None:
        tag = method.delivery_tag
        self.last_delivery = time.monotonic()
        if self.done_consuming:
            # Past the bound (prefetched before our cancel took effect). Left unacked, it
            # goes back to the queue once when we close; a nack now would have the broker
            # hand it straight back to this consumer, counting a delivery each time.
            self.returned += 1
            return
        env = self._envelope(method, props, body)
        match = self.predicate is None or self._matches(env)
        target = None
        if match and isinstance(self.sink, OriginSink):
            target = env.origin()
            if target is None or target == self.source:
                match = False
                self.no_origin += 1
        if match and self.limit is not None and self.matched >= self.limit:
            self.returned += 1  # left unacked: back to the queue when we close
            self._stop_consuming()
            return
        self.progress.scanned += 1
        self.order.append(tag)
        if match:
            self.matched += 1
            sink = self.sink
            if isinstance(sink, (QueueSink, OriginSink)):
                destination = sink.queue if isinstance(sink, QueueSink) else str(target)
                # The operator's marker (DESIGN §4 header style): `dlq list` reads it as
                # reason `operator`, and `dlq replay --to original` as the way back.
                headers = dict(props.headers or {})
                headers[H_MOVED_BY] = OPERATOR  # a person or a runbook: either way, not a failure
                headers[H_MOVED_FROM] = self.source
                headers[H_MOVED_TO] = destination
                props.headers = headers
                self._publish(destination, props, body, tag, "moved")
            elif isinstance(sink, FileSink):
                sink.writer.write(
                    record(self.source, method.routing_key, method.redelivered, props, body)
                )
                self.file_pending.append(tag)
                if len(self.file_pending) >= self.ACK_BATCH:
                    self._sync_file()
            else:
                self._settle(tag, "moved")
        else:
            self._publish(self.source, props, body, tag, "kept")
        if self.progress.scanned >= self.progress.total:
            self._stop_consuming()

    def _envelope(
        self, method: Basic.Deliver, props: pika.BasicProperties, body: bytes
    ) -> Envelope:
        return Envelope(
            props.headers,
            props,
            body,
            method.routing_key or "",
            method.exchange or "",
            bool(method.redelivered),
            self.source,
        )

    def _matches(self, env: Envelope) -> bool:
        assert self.predicate is not None
        try:
            return self.predicate(env)
        except NotJson:
            self.not_json += 1
            return False

    def _publish(
        self, queue: str, props: pika.BasicProperties, body: bytes, tag: int, kind: str
    ) -> None:
        assert self.ch is not None
        # mandatory: an unroutable copy comes back as basic.return instead of vanishing.
        self.ch.basic_publish("", queue, body, props, mandatory=True)
        self.seq += 1
        self.confirms.append((self.seq, tag, kind))

    def _on_return(
        self, _ch: Channel, method: Basic.Return, _props: pika.BasicProperties, _body: bytes
    ) -> None:
        # The broker acks a returned message too; stop acking the source so it stays there.
        self.frozen = True
        if self.error is None:
            self.error = (
                f"the broker could not route a copy to {method.routing_key!r} "
                f"({method.reply_text}); stopped, the source keeps every unconfirmed message"
            )
        self._stop_consuming()

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        if isinstance(method, Basic.Nack):
            self.frozen = True
            if self.error is None:
                self.error = "the broker refused a copy (nack); stopped without acking it"
            self._stop_consuming()
            return
        n = method.delivery_tag
        if method.multiple:
            while self.confirms and self.confirms[0][0] <= n:
                _seq, tag, kind = self.confirms.popleft()
                self._settle(tag, kind)
        elif self.confirms and self.confirms[0][0] == n:
            _seq, tag, kind = self.confirms.popleft()
            self._settle(tag, kind)
        else:
            self.early.add(n)
        while self.confirms and self.confirms[0][0] in self.early:
            seq, tag, kind = self.confirms.popleft()
            self.early.discard(seq)
            self._settle(tag, kind)
        self._maybe_finish()

    def _sync_file(self) -> None:
        if isinstance(self.sink, FileSink) and self.file_pending:
            self.sink.writer.sync()
            for tag in self.file_pending:
                self._settle(tag, "moved")
            self.file_pending.clear()

    def _settle(self, tag: int, kind: str) -> None:
        if kind == "moved":
            self.progress.moved += 1
        else:
            self.progress.kept += 1
        self.settled.add(tag)
        while self.order and self.order[0] in self.settled:
            head = self.order.popleft()
            self.settled.discard(head)
            self.last_settled_tag = head
            self.unacked_settled += 1
        if self.unacked_settled >= self.ACK_BATCH:
            self._ack()

    def _ack(self) -> None:
        # Acks go in delivery order up to the first unsettled message (multiple=True).
        if self.unacked_settled and not self.frozen and self.ch and self.ch.is_open:
            self.ch.basic_ack(self.last_settled_tag, multiple=True)
            self.unacked_settled = 0

    # -- ending -------------------------------------------------------------------------
    def _stop_consuming(self) -> None:
        if self.done_consuming:
            return
        self.done_consuming = True
        # No basic.cancel: on a RabbitMQ 3.10 quorum queue, acks sent after a cancel (while
        # deliveries were still in flight) were sometimes dropped, and every message we had
        # moved came back at close. Deliveries past this point are left unacked and return
        # to the queue when we close (at most the prefetch window).
        self.deadline = time.monotonic() + 30.0
        self._maybe_finish()

    def _maybe_finish(self) -> None:
        if not self.done_consuming:
            return
        self._sync_file()
        if not self.confirms:
            self._finish()

    def _finish(self) -> None:
        self._ack()
        self._close()

    def _close(self) -> None:
        if self.closing:
            return
        self.closing = True
        assert self.conn is not None
        if self.conn.is_open:
            self.conn.close()
        elif self.conn.is_closed:
            self.conn.ioloop.stop()

    def _tick(self) -> None:
        assert self.conn is not None
        if self.closing:
            return
        if self.stop_requested and not self.done_consuming:
            self.interrupted = True
            self._stop_consuming()
        self._sync_file()
        self._ack()
        if (
            self.consuming
            and not self.done_consuming
            and not self.order
            and time.monotonic() - self.last_delivery > self.idle_timeout
        ):
            # Other consumers took what we counted at the start: nothing more will come.
            self._stop_consuming()
        if self.deadline and time.monotonic() > self.deadline:
            self.error = (
                self.error or "gave up waiting for confirms; unconfirmed stay in the source"
            )
            self._close()
            return
        if self.on_progress and self.progress.total:
            self.on_progress(self.progress)
        self.conn.ioloop.call_later(self.TICK, self._tick)


@contextlib.contextmanager
def _graceful_sigint(on_first: Callable[[], None]) -> Iterator[None]:
    """First Ctrl-C asks for a clean stop; a second one interrupts at once (still lossless)."""
    previous = signal.getsignal(signal.SIGINT)
    hits = 0

    def handler(signum: int, frame: Any) -> None:
        nonlocal hits
        hits += 1
        if hits > 1:
            raise KeyboardInterrupt
        on_first()

    try:
        signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread (e.g. inside the dashboard's worker)
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def move_client(
    profile: Profile,
    source: str,
    sink: Sink,
    *,
    predicate: Predicate | None = None,
    limit: int | None = None,
    prefetch: int = 2000,
    idle_timeout: float = 3.0,
    on_progress: ProgressFn | None = None,
    stop: Callable[[], bool] | None = None,
) -> MoveResult:
    """Move with likkerctl's own consumer; every message moved to a queue is marked with
    `likker-moved-by: operator`, `likker-moved-from` and `likker-moved-to` headers."""
    run = _ClientMove(profile, source, sink, predicate, limit, prefetch, idle_timeout, on_progress)
    if stop is not None:
        original_tick = run._tick

        def tick() -> None:
            if stop():
                run.stop_requested = True
            original_tick()

        run._tick = tick  # type: ignore[method-assign]

    def request_stop() -> None:
        run.stop_requested = True

    started = time.monotonic()
    with _graceful_sigint(request_stop):
        run.run()
    if isinstance(sink, FileSink):
        sink.writer.close()
    if run.error and run.error_kind in (NotFound, Unreachable) and run.progress.scanned == 0:
        raise run.error_kind(run.error)
    p = run.progress
    notes = []
    if run.not_json:
        notes.append(f"{run.not_json:,} message(s) whose body is not JSON did not match: kept")
    if run.no_origin:
        notes.append(f"{run.no_origin:,} message(s) name no queue they came from: kept")
    return MoveResult(
        engine="client",
        source=source,
        destination=sink.label,
        total=p.total,
        scanned=p.scanned,
        moved=p.moved,
        kept=p.kept,
        returned=run.returned,
        seconds=time.monotonic() - started,
        interrupted=run.interrupted,
        error=run.error,
        notes=notes,
    )
