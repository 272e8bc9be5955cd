"""JSON-lines archives of messages taken off a queue (what `purge` keeps unless --no-archive).

One line per message: queue, when, routing key, redelivered, properties with headers, and the
body (text when it is UTF-8, else base64). Lines are flushed and fsynced before the source
message is acked, so an archive never misses what a purge removed.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import os
from pathlib import Path
from typing import IO, Any

import pika

PROPERTY_NAMES = (
    "content_type",
    "content_encoding",
    "delivery_mode",
    "priority",
    "correlation_id",
    "reply_to",
    "expiration",
    "message_id",
    "timestamp",
    "type",
    "user_id",
    "app_id",
)


def jsonable(value: Any) -> Any:
    """AMQP table values (bytes, datetimes, decimals, nested tables) as JSON values."""
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return {"base64": base64.b64encode(value).decode()}
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def properties_json(props: pika.BasicProperties) -> dict[str, Any]:
    out = {
        name: getattr(props, name) for name in PROPERTY_NAMES if getattr(props, name) is not None
    }
    out["headers"] = jsonable(props.headers or {})
    return out


def body_json(body: bytes) -> dict[str, Any]:
    try:
        return {"body": body.decode(), "body_encoding": "utf-8"}
    except UnicodeDecodeError:
        return {"body": base64.b64encode(body).decode(), "body_encoding": "base64"}


def record(
    queue: str, routing_key: str, redelivered: bool, props: pika.BasicProperties, body: bytes
) -> dict[str, Any]:
    return {
        "queue": queue,
        "archived_at": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
        "routing_key": routing_key,
        "redelivered": redelivered,
        "properties": properties_json(props),
        **body_json(body),
    }


class ArchiveWriter:
    """Appends records; `sync()` makes everything written so far durable."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[str] = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())
        self.count = 0

    def write(self, rec: dict[str, Any]) -> None:
        self._fh.write(json.dumps(rec, separators=(",", ":")) + "\n")
        self.count += 1

    def sync(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        if not self._fh.closed:
            self.sync()
            self._fh.close()


def default_archive_path(state_dir: Path, queue: str) -> Path:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in queue)
    return state_dir / "archive" / f"{safe}-{stamp}.jsonl"


def read_archive(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
