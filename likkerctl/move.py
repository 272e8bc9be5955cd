"""Lossless moves of messages out of a queue: the engine behind shovel, purge and dlq replay.

Two engines, one promise: a message is acked at the source only after its copy is safe
(confirmed by the broker at the destination, or fsynced to an archive file). A crash at
any point leaves every message in the source, the destination, or both (at-least-once);
never in neither. Both runs are bounded by the source's length at the start, so messages
that go back to the source's tail are not visited again.

- **broker** (`move_broker`): a dynamic shovel of the rabbitmq_shovel plugin. With a header
  predicate the shovel publishes into a temporary headers exchange bound to the destination
  with the predicate's bindings, whose alternate exchange (a fanout) is bound back to the
  source: matching messages go to the destination, the others back to the source's tail.
  `src-delete-after: queue-length` bounds the run; `ack-mode: on-confirm` makes it lossless.
  The shovel lives in the broker: killing likkerctl does not stop it, and running the same
  move again waits for it and cleans up.
- **client** (`move_client`): consume with a large prefetch, publish each message (to the
  destination, or back to the source's tail when it does not match) with pipelined
  publisher confirms and mandatory routing, ack the source in delivery order as confirms
  arrive. Predicates on anything (delivery counts, absent headers, negations).
"""

from __future__ import annotations

import contextlib
import signal
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import pika
import pika.exceptions
from pika.adapters.select_connection import SelectConnection
from pika.channel import Channel
from pika.spec import Basic

from likkerctl import rabbit
from likkerctl.archive import ArchiveWriter, record
from likkerctl.errors import FAILED, NOT_FOUND, UNREACHABLE, CliError
from likkerctl.predicate import Predicate
from likkerctl.profile import Profile, redact_url

SHOVEL_PREFIX = "likkerctl-move-"
EXCHANGE_PREFIX = "likkerctl.move."


@dataclass
class Progress:
    total: int  # messages in the source when the run started (the bound)
    scanned: int = 0
    moved: int = 0
    kept: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def rate(self) -> float:
        return self.scanned / max(time.monotonic() - self.started, 1e-6)


ProgressFn = Callable[[Progress], None]


@dataclass
class MoveResult:
    engine: str  # "broker" or "client"
    source: str
    destination: str  # a queue, "file:<path>" or "drop"
    total: int
    scanned: int
    moved: int
    kept: int
    returned: int = 0  # read past the bound, never acked: back in the source
    seconds: float = 0.0
    interrupted: bool = False
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    # The broker engine's moved/kept split comes from lagging broker statistics.
    counts_exact: bool = True

    @property
    def rate(self) -> float:
        return round(self.scanned / self.seconds, 1) if self.seconds else 0.0

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "seconds": round(self.seconds, 3), "rate": self.rate}


# -- sinks for the client engine --------------------------------------------------------
@dataclass
class QueueSink:
    queue: str

    @property
    def label(self) -> str:
        return self.queue


@dataclass
class FileSink:
    writer: ArchiveWriter

    @property
    def label(self) -> str:
        return f"file:{self.writer.path}"


class DropSink:
    label = "drop"


Sink = QueueSink | FileSink | DropSink


# -- client engine ----------------------------------------------------------------------
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
        self.error: str | None = None
        self.error_code = FAILED
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
        params = pika.URLParameters(self.profile.amqp_url)
        params.connection_attempts = 1
        params.socket_timeout = 5
        # A broker in a resource alarm blocks our publishes; give up rather than hang forever.
        params.blocked_connection_timeout = 60
        self.conn = SelectConnection(
            params,
            on_open_callback=self._on_open,
            on_open_error_callback=self._on_open_error,
            on_close_callback=self._on_closed,
        )
        self.conn.ioloop.call_later(self.TICK, self._tick)
        self.conn.ioloop.start()

    def _on_open(self, conn: SelectConnection) -> None:
        _coalesce_writes(conn)
        conn.channel(on_open_callback=self._on_channel)

    def _on_open_error(self, _conn: SelectConnection, exc: BaseException) -> None:
        self.error = f"RabbitMQ unreachable at {redact_url(self.profile.amqp_url)}: {exc!r}"
        self.error_code = UNREACHABLE
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
                self.error_code = NOT_FOUND
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
        match = self.predicate is None or self.predicate.matches(props.headers, method.redelivered)
        if match and self.limit is not None and self.matched >= self.limit:
            self.returned += 1  # left unacked: back to the queue when we close
            self._stop_consuming()
            return
        self.progress.scanned += 1
        self.order.append(tag)
        if match:
            self.matched += 1
            sink = self.sink
            if isinstance(sink, QueueSink):
                self._publish(sink.queue, props, body, tag, "moved")
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


def _coalesce_writes(conn: SelectConnection) -> None:
    """Send pika's queued frames in one syscall instead of one per frame.

    pika writes each frame (three per publish) with its own send(); joining what is queued
    nearly doubles the client engine's rate here (bench/bench_moves.py). Patched on this
    connection's transport only; without the private attribute we just run slower.
    """
    transport = getattr(conn, "_transport", None)
    buffers = getattr(transport, "_tx_buffers", None)
    produce = getattr(transport, "_produce", None)
    if transport is None or buffers is None or produce is None:
        return

    def produce_joined() -> None:
        if len(buffers) > 1:
            joined = b"".join(buffers)
            buffers.clear()
            buffers.append(joined)
        produce()

    transport._produce = produce_joined


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
    if run.error and run.error_code in (NOT_FOUND, UNREACHABLE) and run.progress.scanned == 0:
        raise CliError(run.error, run.error_code)
    p = run.progress
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
    )


# -- broker engine ----------------------------------------------------------------------
def ready_count(profile: Profile, queue: str) -> int:
    conn = rabbit.connect(profile)
    try:
        return int(conn.channel().queue_declare(queue, passive=True).method.message_count)
    except pika.exceptions.ChannelClosedByBroker as exc:
        raise CliError(f"no queue {queue!r}", NOT_FOUND) from exc
    finally:
        if conn.is_open:
            conn.close()


def _exchanges_for(run_id: str) -> tuple[str, str]:
    return f"{EXCHANGE_PREFIX}{run_id}", f"{EXCHANGE_PREFIX}{run_id}.rest"


def _run_id_of(name: str) -> str:
    return name.removeprefix(SHOVEL_PREFIX)


def running_moves(mgmt: rabbit.Management, source: str | None = None) -> list[dict[str, Any]]:
    """Our shovels still in the broker (e.g. after likkerctl was killed), optionally by source."""
    return [
        p
        for p in mgmt.shovel_parameters()
        if p["name"].startswith(SHOVEL_PREFIX)
        and (source is None or p.get("value", {}).get("src-queue") == source)
    ]


def sweep(mgmt: rabbit.Management) -> list[str]:
    """Delete temporary exchanges whose shovel is gone (left by a killed run)."""
    live = {_run_id_of(p["name"]) for p in running_moves(mgmt)}
    removed = []
    for ex in mgmt.exchanges():
        name = ex["name"]
        if not name.startswith(EXCHANGE_PREFIX):
            continue
        run_id = name.removeprefix(EXCHANGE_PREFIX).removesuffix(".rest")
        if run_id not in live:
            mgmt.delete_exchange(name)
            removed.append(name)
    return removed


def _wait_gone(
    mgmt: rabbit.Management, name: str, tick: Callable[[], None] | None, poll: float = 0.2
) -> None:
    """Poll until the shovel parameter is gone (the shovel deletes itself when done)."""
    last_check = last_tick = time.monotonic()
    while any(p["name"] == name for p in mgmt.shovel_parameters()):
        now = time.monotonic()
        if now - last_check >= 2.0:
            last_check = now
            failure = next(
                (
                    s
                    for s in mgmt.shovels()
                    if s.get("name") == name and s.get("state") == "terminated"
                ),
                None,
            )
            if failure:
                mgmt.delete_shovel(name)
                raise CliError(
                    f"the broker's shovel {name} failed: "
                    f"{failure.get('reason', 'no reason given')}; "
                    "unmoved messages are still in the source",
                    FAILED,
                )
        if tick and now - last_tick >= 1.0:
            last_tick = now
            tick()
        time.sleep(poll)


def _declare_selector(
    profile: Profile, source: str, destination: str, bindings: list[dict[str, Any]], run_id: str
) -> tuple[str, str]:
    selector, rest = _exchanges_for(run_id)
    conn = rabbit.connect(profile)
    try:
        ch = conn.channel()
        ch.exchange_declare(rest, exchange_type="fanout", durable=True)
        ch.queue_bind(source, rest)
        ch.exchange_declare(
            selector,
            exchange_type="headers",
            durable=True,
            arguments={"alternate-exchange": rest},
        )
        # Bindings are declared over AMQP so their values carry the same AMQP types as the
        # headers publishers set (an int binding must meet an int header).
        for args in bindings:
            ch.queue_bind(destination, selector, arguments=args)
    finally:
        conn.close()
    return selector, rest


def move_broker(
    profile: Profile,
    source: str,
    destination: str,
    *,
    predicate: Predicate | None = None,
    limit: int | None = None,
    on_progress: ProgressFn | None = None,
    poll: float = 0.2,
) -> MoveResult:
    """Move with the broker's shovel plugin; header predicates only (see module doc)."""
    mgmt = rabbit.Management(profile)
    mgmt.require_plugin(rabbit.SHOVEL_PLUGIN, "to move messages at broker speed")
    bindings = predicate.bindings() if predicate else None
    if predicate is not None and bindings is None:
        raise CliError(f"predicate {predicate.text!r} cannot be evaluated by the broker", FAILED)
    if predicate is not None and limit is not None:
        raise CliError("--limit with a predicate needs the client engine", FAILED)
    notes: list[str] = []
    # A run of ours on this source may still be going (likkerctl was killed): let it finish.
    for earlier in running_moves(mgmt, source):
        notes.append(f"waited for an earlier move still running in the broker: {earlier['name']}")
        _wait_gone(mgmt, earlier["name"], None, poll)
    swept = sweep(mgmt)
    if swept:
        notes.append(f"removed {len(swept)} temporary exchange(s) of earlier runs")
    mgmt.queue(source)  # clear NOT_FOUND errors before anything is declared
    dst = mgmt.queue(destination)
    # The management API's counts lag by a statistics interval; AMQP's are exact.
    total = ready_count(profile, source)
    if limit is not None:
        total = min(total, limit)
    if total == 0:
        return MoveResult("broker", source, destination, 0, 0, 0, 0, notes=notes)
    run_id = uuid.uuid4().hex[:12]
    name = f"{SHOVEL_PREFIX}{run_id}"
    value: dict[str, Any] = {
        "src-protocol": "amqp091",
        "src-uri": "amqp://",
        "src-queue": source,
        # A number bounds the run to what was there at the start.
        "src-delete-after": total if limit is not None else "queue-length",
        "src-prefetch-count": 1000,  # measured best of 1000/2000/5000 here
        "dest-protocol": "amqp091",
        "dest-uri": "amqp://",
        "ack-mode": "on-confirm",
        "dest-add-forward-headers": False,
    }
    if profile.vhost != "/":
        vhost_uri = "amqp:///" + rabbit.q(profile.vhost)
        value["src-uri"] = value["dest-uri"] = vhost_uri
    selector = rest = None
    if bindings is not None:
        selector, rest = _declare_selector(profile, source, destination, bindings, run_id)
        value["dest-exchange"] = selector
    else:
        value["dest-queue"] = destination
    dst_before = int(dst.get("message_stats", {}).get("publish", 0))
    depth_before = ready_count(profile, destination) if selector else 0
    progress = Progress(total=total)

    def tick() -> None:
        # Statistics lag by the broker's collect interval; good enough for a progress bar.
        if selector:
            stats = mgmt.get(f"exchanges/{rabbit.q(profile.vhost)}/{rabbit.q(selector)}")
            progress.scanned = int(stats.get("message_stats", {}).get("publish_in", 0))
        else:
            stats = mgmt.queue(destination).get("message_stats", {})
            progress.scanned = int(stats.get("publish", 0)) - dst_before
        progress.scanned = min(progress.scanned, total)
        if on_progress:
            on_progress(progress)

    interrupted = False
    started = time.monotonic()  # the move itself; set-up above takes a few ms
    mgmt.put_shovel(name, value)
    try:
        _wait_gone(mgmt, name, tick, poll)
        finished = time.monotonic()
    except KeyboardInterrupt:
        # Deleting the shovel stops it; what it had not confirmed returns to the source.
        interrupted = True
        mgmt.delete_shovel(name)
        while any(s.get("name") == name for s in mgmt.shovels()):
            time.sleep(poll)
        finished = time.monotonic()
    finally:
        if selector and rest and not running_moves(mgmt, source):
            for ex in (selector, rest):
                mgmt.delete_exchange(ex)
    moved, kept = _settled_counts(
        mgmt, profile, destination, dst_before, depth_before, selector, total
    )
    if not interrupted:
        progress.scanned = total
    return MoveResult(
        engine="broker",
        source=source,
        destination=destination,
        total=total,
        scanned=progress.scanned if interrupted else total,
        moved=moved,
        kept=kept,
        seconds=finished - started,
        interrupted=interrupted,
        notes=notes,
        counts_exact=selector is None,
    )


def _settled_counts(
    mgmt: rabbit.Management,
    profile: Profile,
    destination: str,
    dst_before: int,
    depth_before: int,
    selector: str | None,
    total: int,
) -> tuple[int, int]:
    """Moved and kept counts of a selective move, from the destination's figures.

    The exchanges are gone by now. Two estimates: the growth of the destination's depth
    (exact and immediate over AMQP, unless something else reads or writes it meanwhile)
    and its publish counter (which lags one statistics interval, ~5 s). The counter is
    polled until it has caught up with the depth and stopped moving, at most 12 s.
    """
    if selector is None:
        return total, 0  # the shovel moved exactly its bound
    grown = ready_count(profile, destination) - depth_before
    last = -1
    deadline = time.monotonic() + 12.0
    moved = 0
    while time.monotonic() < deadline:
        stats = mgmt.queue(destination).get("message_stats", {})
        moved = int(stats.get("publish", 0)) - dst_before
        if moved == last and moved >= grown:
            break
        last = moved
        time.sleep(1.0)
    moved = max(moved, grown)
    moved = max(0, min(moved, total))
    return moved, total - moved
