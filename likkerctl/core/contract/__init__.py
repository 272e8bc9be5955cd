"""The Likker message contract (DESIGN §4): names, headers and the like-message shape.

likkerctl relies on exactly this, against our stack or anyone's; the stack builds its
messages with the same functions so the two can never drift apart. This package is the only
part of likkerctl the stack imports: `http` is the HTTP side of the same agreement (the
error format, /healthz, /metrics), `ports` how a free port is told.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pika

ACTIONS_EXCHANGE = "likker.actions"
ACTIONS_QUEUE = "likker.actions"
ACTIONS_ROUTING_KEY = "likker.actions"
DLX_EXCHANGE = "likker.dlx"
DLQ_QUEUE = "likker.actions.dlq"
CONTROL_EXCHANGE = "likker.control"

# Never prefix with "x-": a headers exchange ignores x- headers when matching.
H_ACTION = "likker-action"
H_USER = "likker-user"
H_BOT = "likker-bot"
H_POST = "likker-post"
H_FAILURE = "likker-failure"
H_FAILURE_DETAIL = "likker-failure-detail"

FAILURE_REASONS = ("forbidden", "not-found", "invalid", "retries-exhausted", "operator")

ACTIONS_QUEUE_ARGS: dict[str, Any] = {
    "x-queue-type": "quorum",
    "x-dead-letter-exchange": DLX_EXCHANGE,
    # At-least-once dead lettering needs reject-publish overflow (quorum queue docs).
    "x-dead-letter-strategy": "at-least-once",
    "x-overflow": "reject-publish",
}
DLQ_QUEUE_ARGS: dict[str, Any] = {"x-queue-type": "quorum"}


# json.dumps with any option builds a new encoder per call; the gateway encodes every like.
_COMPACT = json.JSONEncoder(separators=(",", ":"))


@dataclass(frozen=True)
class Actor:
    user_id: int
    bot_id: int | None = None


@dataclass(frozen=True)
class LikeMessage:
    request_id: str
    post_id: int
    actor: Actor
    received_at: str
    action: str = "like"

    def body(self) -> bytes:
        return _COMPACT.encode(
            {
                "request_id": self.request_id,
                "action": self.action,
                "post_id": self.post_id,
                "actor": {"user_id": self.actor.user_id, "bot_id": self.actor.bot_id},
                "received_at": self.received_at,
            }
        ).encode()

    def headers(self) -> dict[str, Any]:
        headers: dict[str, Any] = {
            H_ACTION: self.action,
            H_USER: self.actor.user_id,
            H_POST: self.post_id,
        }
        if self.actor.bot_id is not None:
            headers[H_BOT] = self.actor.bot_id
        return headers

    def properties(self) -> pika.BasicProperties:
        return pika.BasicProperties(
            content_type="application/json",
            delivery_mode=2,
            message_id=self.request_id,
            timestamp=int(time.time()),
            headers=self.headers(),
        )


def new_like(post_id: int, actor: Actor, request_id: str | None = None) -> LikeMessage:
    return LikeMessage(
        request_id=request_id or str(uuid.uuid4()),
        post_id=post_id,
        actor=actor,
        received_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
    )


class ContractError(ValueError):
    """A message body that does not follow the contract."""


# Ids are JSON-safe integers (|id| <= 2**53 - 1): they fit every store's 64-bit integers and
# survive every JSON reader (JavaScript, jq and schema validators read numbers as doubles,
# and round larger ones). A larger one is the message's fault.
ID_MAX = 2**53 - 1
_ID_SCHEMA = {"type": "integer", "minimum": -ID_MAX, "maximum": ID_MAX}
# What parse_like_data accepts, as JSON Schema (the likes service's OpenAPI document).
LIKE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["request_id", "post_id", "actor"],
    "properties": {
        "request_id": {"type": "string", "format": "uuid"},
        "action": {"const": "like"},
        "post_id": _ID_SCHEMA,
        "actor": {
            "type": "object",
            "required": ["user_id"],
            "properties": {
                "user_id": _ID_SCHEMA,
                "bot_id": {"anyOf": [_ID_SCHEMA, {"type": "null"}]},
            },
        },
        "received_at": {"type": "string", "description": "RFC 3339, when the gateway took it"},
    },
}


def _integer(value: Any) -> Any:
    """An integral JSON number (`7.0`) is an integer, as in JSON Schema; anything else as is."""
    if type(value) is float and value.is_integer() and abs(value) <= ID_MAX:
        return int(value)
    return value


def parse_like(body: bytes) -> LikeMessage:
    """Parse and validate a like body; raise ContractError saying what is wrong."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ContractError(f"body is not JSON: {exc}") from exc
    return parse_like_data(data)


def parse_like_data(data: Any) -> LikeMessage:
    """Validate an already decoded like body (an item of a batch); ContractError if wrong."""
    if not isinstance(data, dict):
        raise ContractError("body is not a JSON object")
    try:
        actor = data["actor"]
        request_id = str(uuid.UUID(str(data["request_id"])))
        post_id = data["post_id"]
        user_id = actor["user_id"]
        bot_id = actor.get("bot_id")
        action = data.get("action", "like")
        received_at = data.get("received_at", "")
    except (KeyError, TypeError, AttributeError) as exc:
        raise ContractError(f"missing field {exc}") from exc
    except ValueError as exc:
        raise ContractError("request_id is not a UUID") from exc
    post_id, user_id = _integer(post_id), _integer(user_id)
    bot_id = None if bot_id is None else _integer(bot_id)
    for name, value in (("post_id", post_id), ("actor.user_id", user_id)):
        if type(value) is not int:
            raise ContractError(f"{name} must be an integer")
    if bot_id is not None and type(bot_id) is not int:
        raise ContractError("actor.bot_id must be an integer or null")
    for name, value in (("post_id", post_id), ("actor.user_id", user_id), ("actor.bot_id", bot_id)):
        if value is not None and not -ID_MAX <= value <= ID_MAX:
            raise ContractError(f"{name} is beyond 2**53 - 1 (not a JSON-safe integer)")
    if action != "like":
        raise ContractError(f"unknown action {action!r}")
    if not isinstance(received_at, str):
        raise ContractError("received_at must be a string (RFC 3339)")
    return LikeMessage(request_id, post_id, Actor(user_id, bot_id), received_at, action)
