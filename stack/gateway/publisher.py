"""Publishing with pipelined publisher confirms, for many concurrent HTTP requests.

One pika SelectConnection runs in its own thread. Any thread hands it a message and gets a
Future that resolves only when the broker confirmed it (acked and not returned as
unroutable). Many messages are in flight at once and the broker acks them in batches
(`multiple`), so throughput is not capped by one round trip per message.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future
from typing import Any

import pika
from pika.adapters.select_connection import SelectConnection
from pika.channel import Channel
from pika.spec import Basic

log = logging.getLogger("likker.gateway.publisher")


class BrokerUnavailable(Exception):
    """The broker cannot take the message now (down, reconnecting, or blocking publishers)."""


class ConfirmPublisher:
    def __init__(self, amqp_url: str, *, reconnect_delay: float = 0.5) -> None:
        self._params = pika.URLParameters(amqp_url)
        self._reconnect_delay = reconnect_delay
        self._conn: SelectConnection | None = None
        self._channel: Channel | None = None
        self._ready = threading.Event()
        self._blocked = False
        self._stopping = False
        # delivery tag -> (future, message_id); insertion order is tag order.
        self._pending: OrderedDict[int, tuple[Future[None], str | None]] = OrderedDict()
        self._returned: set[str] = set()
        self._next_tag = 0
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
        return len(self._pending)

    def start(self) -> None:
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

    # -- publishing ------------------------------------------------------------------
    def publish(
        self, exchange: str, routing_key: str, body: bytes, properties: pika.BasicProperties
    ) -> Future[None]:
        """Queue a message for publishing; the Future resolves on the broker's confirm."""
        if self._blocked:
            raise BrokerUnavailable("broker is blocking publishers (resource alarm)")
        conn = self._conn
        if not self._ready.is_set() or conn is None:
            raise BrokerUnavailable("not connected to the broker")
        fut: Future[None] = Future()
        try:
            conn.ioloop.add_callback_threadsafe(
                lambda: self._publish_now(exchange, routing_key, body, properties, fut)
            )
        except Exception as exc:  # the ioloop closed under us
            raise BrokerUnavailable(f"publisher loop closed: {exc}") from exc
        return fut

    def _publish_now(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: pika.BasicProperties,
        fut: Future[None],
    ) -> None:
        channel = self._channel
        if channel is None or not channel.is_open or not self._ready.is_set():
            fut.set_exception(BrokerUnavailable("channel closed before publishing"))
            return
        self._next_tag += 1
        self._pending[self._next_tag] = (fut, properties.message_id)
        try:
            channel.basic_publish(exchange, routing_key, body, properties, mandatory=True)
        except Exception as exc:  # any failure here means "not published"
            self._pending.pop(self._next_tag, None)
            fut.set_exception(BrokerUnavailable(f"publish failed: {exc}"))

    # -- connection life cycle (publisher thread only) -------------------------------
    def _run(self) -> None:
        while not self._stopping:
            self._conn = SelectConnection(
                self._params,
                on_open_callback=self._on_open,
                on_open_error_callback=self._on_open_error,
                on_close_callback=self._on_closed,
            )
            self._conn.add_on_connection_blocked_callback(self._on_blocked)
            self._conn.add_on_connection_unblocked_callback(self._on_unblocked)
            self._conn.ioloop.start()
            self._ready.clear()
            self._blocked = False
            self._fail_pending("connection to the broker lost")
            if not self._stopping:
                time.sleep(self._reconnect_delay)

    def _close(self) -> None:
        if self._conn is not None and self._conn.is_open:
            self._conn.close()
        elif self._conn is not None:
            self._conn.ioloop.stop()

    def _on_open(self, conn: pika.BaseConnection) -> None:
        conn.channel(on_open_callback=self._on_channel_open)

    def _on_open_error(self, conn: pika.BaseConnection, err: BaseException) -> None:
        log.warning("cannot connect to the broker: %s", err)
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

    def _on_channel_closed(self, _channel: Channel, reason: BaseException) -> None:
        log.warning("publisher channel closed: %s", reason)
        self._ready.clear()
        self._fail_pending(f"channel closed: {reason}")
        if self._conn is not None and self._conn.is_open:
            self._conn.close()

    def _on_blocked(self, _conn: Any, _frame: Any) -> None:
        log.warning("broker blocked publishing (resource alarm)")
        self._blocked = True

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
        if method.multiple:
            while self._pending and next(iter(self._pending)) <= tag:
                self._settle(next(iter(self._pending)), ack)
        else:
            self._settle(tag, ack)

    def _settle(self, tag: int, ack: bool) -> None:
        entry = self._pending.pop(tag, None)
        if entry is None:
            return
        fut, message_id = entry
        returned = message_id is not None and message_id in self._returned
        if returned:
            self._returned.discard(message_id)
        if fut.done():
            return
        if ack and not returned:
            fut.set_result(None)
        elif returned:
            fut.set_exception(BrokerUnavailable("message unroutable: no queue bound"))
        else:
            fut.set_exception(BrokerUnavailable("broker refused the message (nack)"))

    def _fail_pending(self, why: str) -> None:
        pending, self._pending = self._pending, OrderedDict()
        for fut, _mid in pending.values():
            if not fut.done():
                fut.set_exception(BrokerUnavailable(why))
