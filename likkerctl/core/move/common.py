"""What both move engines share: the run's bound and progress, its result, and the sinks."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from likkerctl.core.messages.archive import ArchiveWriter

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
class OriginSink:
    """Each message back to the queue it came from (x-death, or likkerctl's own marker);
    messages that name none stay in the source."""

    label: str = "original queues"


@dataclass
class FileSink:
    writer: ArchiveWriter

    @property
    def label(self) -> str:
        return f"file:{self.writer.path}"


class DropSink:
    label = "drop"


Sink = QueueSink | OriginSink | FileSink | DropSink
