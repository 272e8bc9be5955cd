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

from likkerctl.core.move.broker import move_broker, running_moves, sweep
from likkerctl.core.move.client import move_client
from likkerctl.core.move.common import (
    DropSink,
    FileSink,
    MoveResult,
    OriginSink,
    Progress,
    ProgressFn,
    QueueSink,
    Sink,
)

__all__ = [
    "DropSink",
    "FileSink",
    "MoveResult",
    "OriginSink",
    "Progress",
    "ProgressFn",
    "QueueSink",
    "Sink",
    "move_broker",
    "move_client",
    "running_moves",
    "sweep",
]
