"""The broker engine: a dynamic shovel of the rabbitmq_shovel plugin does the moving.

With a header predicate the shovel publishes into a temporary headers exchange bound to the
destination with the predicate's bindings, whose alternate exchange (a fanout) is bound back
to the source: matching messages go to the destination, the others back to the source's
tail. `src-delete-after: queue-length` bounds the run; `ack-mode: on-confirm` makes it
lossless; `dest-add-forward-headers` marks what it moved (an x-shovelled entry naming our
shovel, whose name ends with source and destination). The shovel lives in the broker:
killing likkerctl does not stop it, and running the same move again waits for it and
cleans up.
"""

from __future__ import annotations

import time
import urllib.parse
import uuid
from collections.abc import Callable
from typing import Any

from likkerctl.core.clients import rabbit
from likkerctl.core.clients.rabbit import ready_count
from likkerctl.core.errors import Failed
from likkerctl.core.messages.predicate import Predicate
from likkerctl.core.move.common import (
    EXCHANGE_PREFIX,
    SHOVEL_PREFIX,
    MoveResult,
    Progress,
    ProgressFn,
)
from likkerctl.core.profile import Profile


def _exchanges_for(run_id: str) -> tuple[str, str]:
    return f"{EXCHANGE_PREFIX}{run_id}", f"{EXCHANGE_PREFIX}{run_id}.rest"


def _run_id_of(name: str) -> str:
    return name.removeprefix(SHOVEL_PREFIX).partition(">")[0]


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


def shovel_uris(profile: Profile) -> str | list[str]:
    """Where the shovel connects: the node running it, or, on a cluster, every node listed
    in the profile (the shovel picks one that answers and moves with it when a node dies)."""
    nodes = profile.amqp_nodes()
    vhost = rabbit.q(profile.vhost)
    if len(nodes) < 2:
        return "amqp://" if profile.vhost == "/" else "amqp:///" + vhost
    uris = []
    for url in nodes:
        parts = urllib.parse.urlsplit(url)
        # Our client query (blocked_connection_timeout, ...) means nothing to the shovel.
        uris.append(urllib.parse.urlunsplit(parts._replace(path="/" + vhost, query="")))
    return uris


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
                raise Failed(
                    f"the broker's shovel {name} failed: "
                    f"{failure.get('reason', 'no reason given')}; "
                    "unmoved messages are still in the source",
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
        raise Failed(f"predicate {predicate.text!r} cannot be evaluated by the broker")
    if predicate is not None and limit is not None:
        raise Failed("--limit with a predicate needs the client engine")
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
    # The name carries source and destination: the shovel's x-shovelled header carries the
    # name, which tells a moved message (reason `operator`) from one sent back to the source.
    name = f"{SHOVEL_PREFIX}{run_id}>{source}>{destination}"
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
        "dest-add-forward-headers": True,
    }
    value["src-uri"] = value["dest-uri"] = shovel_uris(profile)
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
