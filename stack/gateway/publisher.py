"""Publishing with pipelined publisher confirms, for many concurrent HTTP requests.

One pika SelectConnection runs in its own thread. The event loop hands it messages and gets
asyncio Futures that resolve only when the broker confirmed them (acked and not returned as
unroutable). Many messages are in flight at once and the broker acks them in batches
(`multiple`), so throughput is not capped by one round trip per message.

Crossing threads costs a wake-up (a pipe write) each way, and pika sends each frame with its
own syscall; at a thousand likes a second those were a large share of the gateway's CPU. So
the loop wakes the publisher once per burst of publishes, the publisher wakes the loop once
per confirm frame (however many messages it settles), and frames queued together go out
in one send().
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import OrderedDict, deque
from typing import Any

import pika
from pika.adapters.select_connection import SelectConnection
from pika.channel import Channel
from pika.spec import Basic

from likkerctl.core.contract.nodes import Backoff, Nodes, where
from likkerctl.core.contract.writes import coalesce_writes

log = logging.getLogger("likker.gateway.publisher")

Settled = tuple["asyncio.Future[None]", BaseException | None]


class BrokerUnavailable(Exception):
    """The broker cannot take the message now (down, reconnecting, or blocking publishers)."""


class ConfirmPublisher:
    def __init__(self, amqp_url: str, *, reconnect_delay: float = 0.5) -> None:
        # One URL or several (comma-separated): on a lost connection the next node is tried
        # at once, and only a round that reached no node waits (doubling, at most 5 s).
        self._nodes = Nodes(amqp_url, "publisher", log)
        self._backoff = Backoff(reconnect_delay, 5.0)
        self._url: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conn: SelectConnection | None = None
        self._channel: Channel | None = None
        self._ready = threading.Event()
        self._blocked = False
        self._stopping = False
        # Handed over by the event loop, taken by the publisher thread (deque ops are atomic).
        self._outbox: deque[tuple[str, str, bytes, pika.BasicProperties, asyncio.Future[None]]]
        self._outbox = deque()
        self._wake_pending = False
        # delivery tag -> (future, message_id); insertion order is tag order.
        self._pending: OrderedDict[int, tuple[asyncio.Future[None], str | None]] = OrderedDict()
        self._returned: set[str] = set()
        self._next_tag = 0
        self._opened = False
        self._thread = threading.Thread(target=self._run, name="amqp-publisher", daemon=True)

    # -- state seen by the HTTP side -------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._ready.is_set()

    @property
    def blocked(self) -> bool:
        return self._blocked

    @property
    def in_flight(self) -> int:
        return len(self._pending) + len(self._outbox)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start publishing; confirms resolve futures of `loop`, where publish() is called."""
        self._loop = loop
        self._thread.start()

    def wait_connected(self, timeout: float) -> bool:
        return self._ready.wait(timeout)

    def stop(self) -> None:
        self._stopping = True
        conn = self._conn
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.ioloop.add_callback_threadsafe(self._close)
        self._thread.join(timeout=5)

    # -- publishing (event loop thread) ----------------------------------------------
    def publish(
        self, exchange: str, routing_key: str, body: bytes, properties: pika.BasicProperties
    ) -> asyncio.Future[None]:
        """Queue a message for publishing; the Future resolves on the broker's confirm."""
        if self._blocked:
            raise BrokerUnavailable("broker is blocking publishers (resource alarm)")
        conn, loop = self._conn, self._loop
        if not self._ready.is_set() or conn is None or loop is None:
            raise BrokerUnavailable("not connected to the broker")
        fut: asyncio.Future[None] = loop.create_future()
        self._outbox.append((exchange, routing_key, body, properties, fut))
        if not self._wake_pending:
            self._wake_pending = True
            try:
                conn.ioloop.add_callback_threadsafe(self._drain_outbox)
            except Exception as exc:  # the ioloop closed under us
                self._wake_pending = False
                raise BrokerUnavailable(f"publisher loop closed: {exc}") from exc
        return fut

    # -- the publisher thread --------------------------------------------------------
    def _resolve(self, settled: list[Settled]) -> None:
        """Resolve futures on their event loop, with one wake-up for all of them."""
        if settled and self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody is waiting
                self._loop.call_soon_threadsafe(_apply, settled)

    def _drain_outbox(self) -> None:
        self._wake_pending = False  # before taking: a message added from now on wakes us again
        channel = self._channel
        usable = channel is not None and channel.is_open and self._ready.is_set()
        failed: list[Settled] = []
        while self._outbox:
            exchange, routing_key, body, properties, fut = self._outbox.popleft()
            if fut.cancelled():  # its request timed out before we got to it: not published
                continue
            if not usable or channel is None:
                failed.append((fut, BrokerUnavailable("channel closed before publishing")))
                continue
            self._next_tag += 1
            self._pending[self._next_tag] = (fut, properties.message_id)
            try:
                channel.basic_publish(exchange, routing_key, body, properties, mandatory=True)
            except Exception as exc:  # any failure here means "not published"
                self._pending.pop(self._next_tag, None)
                failed.append((fut, BrokerUnavailable(f"publish failed: {exc}")))
        self._resolve(failed)

    def _run(self) -> None:
        tried = 0  # nodes tried since a connection last worked
        while not self._stopping:
            self._url = self._nodes.order()[0]
            self._opened = False
            began = time.monotonic()
            self._conn = SelectConnection(
                self._nodes.params(self._url),
                on_open_callback=self._on_open,
                on_open_error_callback=self._on_open_error,
                on_close_callback=self._on_closed,
            )
            self._conn.add_on_connection_blocked_callback(self._on_blocked)
            self._conn.add_on_connection_unblocked_callback(self._on_unblocked)
            self._conn.ioloop.start()
            self._ready.clear()
            self._blocked = False
            # In flight when the node went: 503 with Retry-After (never 202 unconfirmed).
            self._fail_pending("connection to the broker lost")
            if self._stopping:
                break
            self._nodes.failed(self._url)  # next, try the node after it first
            if self._opened and time.monotonic() - began >= 1.0:
                tried = 0  # a working connection dropped: the next node at once
                self._backoff.reset()
            else:
                tried += 1
            if tried >= len(self._nodes.urls):
                tried = 0
                time.sleep(self._backoff.next())

    def _close(self) -> None:
        if self._conn is not None and self._conn.is_open:
            self._conn.close()
        elif self._conn is not None:
            self._conn.ioloop.stop()

    def _on_open(self, conn: pika.BaseConnection) -> None:
        if self._url is not None:
            self._nodes.opened(self._url)
        self._opened = True
        coalesce_writes(conn)
        conn.channel(on_open_callback=self._on_channel_open)

    def _on_open_error(self, conn: pika.BaseConnection, err: BaseException) -> None:
        log.warning("cannot connect to the broker at %s: %s", where(self._url or ""), err)
        conn.ioloop.stop()

    def _on_closed(self, conn: pika.BaseConnection, reason: BaseException) -> None:
        if not self._stopping:
            log.warning("broker connection closed: %s", reason)
        self._ready.clear()
        conn.ioloop.stop()

    def _on_channel_open(self, channel: Channel) -> None:
        self._channel = channel
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_return_callback(self._on_return)
        self._next_tag = 0
        channel.confirm_delivery(ack_nack_callback=self._on_confirm, callback=self._on_confirm_ok)

    def _on_confirm_ok(self, _frame: Any) -> None:
        log.info("publisher ready (confirms on)")
        self._ready.set()
        # A wake-up asked of a connection that died never ran: take what waits now.
        self._drain_outbox()

    def _on_channel_closed(self, _channel: Channel, reason: BaseException) -> None:
        log.warning("publisher channel closed: %s", reason)
        self._ready.clear()
        self._fail_pending(f"channel closed: {reason}")
        if self._conn is not None and self._conn.is_open:
            self._conn.close()

    def _on_blocked(self, _conn: Any, _frame: Any) -> None:
        log.warning(
            "broker blocked publishing (resource alarm): %d in flight answered 503",
            self.in_flight,
        )
        self._blocked = True
        # The broker reads nothing more from a blocked connection, so what is in flight
        # waits for the alarm to clear: answer it now (503, Retry-After) rather than at
        # each request's confirm timeout. The tags stay pending, so a late confirm settles
        # nothing twice; a like the broker did take is stored, and its retry is the same
        # (post, user) like: stored once.
        self._fail_pending("broker is blocking publishers (resource alarm)", keep_tags=True)

    def _on_unblocked(self, _conn: Any, _frame: Any) -> None:
        log.info("broker unblocked publishing")
        self._blocked = False

    def _on_return(self, _ch: Any, _method: Any, props: pika.BasicProperties, _body: bytes) -> None:
        # A mandatory message the broker could not route: it comes back before its ack.
        if props.message_id:
            self._returned.add(props.message_id)

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        ack = isinstance(method, Basic.Ack)
        tag = method.delivery_tag
        settled: list[Settled] = []
        if method.multiple:
            while self._pending and next(iter(self._pending)) <= tag:
                self._settle(next(iter(self._pending)), ack, settled)
        else:
            self._settle(tag, ack, settled)
        self._resolve(settled)
        if not ack:
            self._recycle_channel()

    def _recycle_channel(self) -> None:
        """After a nack, publish on a fresh channel (and connection), answering 503 meanwhile.

        RabbitMQ 3.10 nacked every later publish of a channel that was publishing to a quorum
        queue while its leader died, for minutes after a new leader was elected (seen here
        in a 3-node cluster with the queue's `reject-publish` overflow); a new channel was
        confirmed at once. A nack is otherwise rare (no length limit is set), so reopening
        costs little.
        """
        channel = self._channel
        if channel is not None and channel.is_open and self._ready.is_set():
            log.warning("broker nacked a publish: reopening the connection")
            self._ready.clear()
            channel.close()

    def _settle(self, tag: int, ack: bool, settled: list[Settled]) -> None:
        entry = self._pending.pop(tag, None)
        if entry is None:
            return
        fut, message_id = entry
        returned = message_id is not None and message_id in self._returned
        if returned:
            self._returned.discard(message_id)
        if ack and not returned:
            settled.append((fut, None))
        elif returned:
            settled.append((fut, BrokerUnavailable("message unroutable: no queue bound")))
        else:
            settled.append((fut, BrokerUnavailable("broker refused the message (nack)")))

    def _fail_pending(self, why: str, *, keep_tags: bool = False) -> None:
        """Answer every unconfirmed and unsent message with BrokerUnavailable. `keep_tags`:
        the channel lives on, so its later confirms must still find their tags."""
        pending = self._pending
        if not keep_tags:
            self._pending = OrderedDict()
        failed: list[Settled] = [(fut, BrokerUnavailable(why)) for fut, _mid in pending.values()]
        while self._outbox:
            failed.append((self._outbox.popleft()[4], BrokerUnavailable(why)))
        self._wake_pending = False
        self._resolve(failed)


def _apply(settled: list[Settled]) -> None:
    """On the event loop: settle futures whose requests still wait (not timed out)."""
    for fut, exc in settled:
        if fut.done():
            continue
        if exc is None:
            fut.set_result(None)
        else:
            fut.set_exception(exc)
