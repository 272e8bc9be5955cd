"""pika's frames in one send(): the gateway's publisher and likkerctl's client move engine
both publish through a pika SelectConnection, which writes each frame (three per publish)
with its own send(). Here so the stack and likkerctl share the one patch."""

from __future__ import annotations

from typing import Any


def coalesce_writes(conn: Any) -> None:
    """Send pika's queued frames in one syscall instead of one per frame.

    Joining what is queued nearly doubles the client engine's rate here
    (bench/bench_moves.py). Patched on this connection's transport only; without the
    private attribute we just run slower.
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
