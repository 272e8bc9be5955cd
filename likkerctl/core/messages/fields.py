"""Fields of any message: headers, properties, JSON body paths, delivery counts, aliases.

A field is what `--where`, `top --by`, `peek --show` and the dashboard's offenders panel
read of a message. Spelled:

- `header.NAME` (`header."x-odd name"` when the name needs quotes): any AMQP header;
- a property: `routing_key`, `exchange`, `message_id`, `correlation_id`, `type`, `app_id`,
  `content_type`, `content_encoding`, `priority`, `timestamp`, `delivery_mode`,
  `user_id`, `reply_to`, `expiration`, and `size` (body bytes);
- `body.PATH`: a JSON body path (`body.tenant`, `body.actor.user_id`, `body[0]`,
  `body."odd key"`), or `body` for the whole body as text;
- `deliveries` (x-acquired-count on RabbitMQ 4.3+, else x-delivery-count; 0 when absent),
  `redelivered`, `reason` (why a dead letter died, or `operator` for a message an operator
  moved to where it is), `actor` (`bot:N` / `user:N` from the bot and user aliases);
- an alias the profile names (`tenant = "header.x-tenant"`). The default aliases are the
  Likker contract's: bot, user, post, action (headers likker-bot, likker-user, ...).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from likkerctl.core import contract
from likkerctl.core.errors import InvalidInput

# Headers likkerctl's moves add to each message they move (DESIGN §4: no x- prefix).
H_MOVED_BY = "likker-moved-by"
H_MOVED_FROM = "likker-moved-from"
H_MOVED_TO = "likker-moved-to"
OPERATOR = "operator"
# The broker engine's shovels are named `likkerctl-move-<run>><source>><destination>`.
SHOVEL_MARK = "likkerctl-move-"

PROPERTIES = (
    "routing_key",
    "exchange",
    "message_id",
    "correlation_id",
    "type",
    "app_id",
    "content_type",
    "content_encoding",
    "priority",
    "timestamp",
    "delivery_mode",
    "user_id",
    "reply_to",
    "expiration",
    "size",
)
COMPUTED = ("deliveries", "redelivered", "reason", "actor")

# The Likker contract, as aliases: every documented `--where bot=42` keeps its meaning.
LIKKER_ALIASES: dict[str, str] = {
    "bot": f"header.{contract.H_BOT}",
    "user": f"header.{contract.H_USER}",
    "post": f"header.{contract.H_POST}",
    "action": f"header.{contract.H_ACTION}",
}
# Contract ids are integers however a publisher typed them (today's behaviour, kept).
INT_ALIASES = frozenset({"bot", "user", "post"})

_SEGMENT = r"""(?:\.(?:"[^"]*"|'[^']*'|[A-Za-z0-9_\-:]+)|\[(?:\d+|"[^"]*"|'[^']*')\])"""
FIELD_PATTERN = rf"(?:header|body){_SEGMENT}+"
_SEGMENTS = re.compile(_SEGMENT)


class NotJson(Exception):
    """A body path was read on a message whose body is not JSON."""


@dataclass(frozen=True)
class Field:
    """One readable thing of a message; `value()` is None when the message has none."""

    name: str  # as the user wrote it (an alias name, or the expression)
    kind: str  # header | property | body | deliveries | redelivered | reason | actor
    path: tuple[str | int, ...] = ()
    as_int: bool = False

    @property
    def header(self) -> str | None:
        return str(self.path[0]) if self.kind == "header" else None

    def value(self, env: Envelope) -> Any:
        kind = self.kind
        if kind == "header":
            raw = _text(env.headers.get(str(self.path[0])))
            return _as_int(raw) if self.as_int else raw
        if kind == "body":
            return env.body_path(self.path)
        if kind == "property":
            return env.prop(str(self.path[0]))
        if kind == "deliveries":
            return env.deliveries
        if kind == "redelivered":
            return env.redelivered
        if kind == "reason":
            return env.reason
        return env.actor


def _text(raw: Any) -> Any:
    return raw.decode(errors="replace") if isinstance(raw, bytes) else raw


def _as_int(raw: Any) -> int | None:
    if raw is None or isinstance(raw, bool):
        return None
    try:
        return int(raw)
    except (TypeError, ValueError):
        return None


_NO_JSON = object()


class Envelope:
    """What fields see of a message: headers, properties, body, where it was read.

    `props` is anything with AMQP property attributes (pika's BasicProperties) or a mapping;
    the body's JSON is decoded once, on first use.
    """

    __slots__ = (
        "_json",
        "body",
        "exchange",
        "headers",
        "offset",
        "props",
        "queue",
        "redelivered",
        "routing_key",
    )

    def __init__(
        self,
        headers: Mapping[str, Any] | None,
        props: Any = None,
        body: bytes = b"",
        routing_key: str = "",
        exchange: str = "",
        redelivered: bool = False,
        queue: str | None = None,
        offset: int | None = None,
    ) -> None:
        self.headers: Mapping[str, Any] = headers or {}
        self.props = props
        self.body = body
        self.routing_key = routing_key
        self.exchange = exchange
        self.redelivered = redelivered
        self.queue = queue
        self.offset = offset
        self._json: Any = None

    def prop(self, name: str) -> Any:
        if name == "routing_key":
            return self.routing_key
        if name == "exchange":
            return self.exchange
        if name == "size":
            return len(self.body)
        props = self.props
        if props is None:
            return None
        value = props.get(name) if isinstance(props, Mapping) else getattr(props, name, None)
        return _text(value)

    def json(self) -> Any:
        if self._json is None:
            try:
                self._json = json.loads(self.body)
            except (ValueError, UnicodeDecodeError):
                self._json = _NO_JSON
        if self._json is _NO_JSON:
            raise NotJson
        return self._json

    @property
    def is_json(self) -> bool:
        try:
            self.json()
        except NotJson:
            return False
        return True

    def body_path(self, path: tuple[str | int, ...]) -> Any:
        if not path:
            return self.body.decode(errors="replace")
        node = self.json()
        for step in path:
            if isinstance(step, int):
                if not isinstance(node, list) or not -len(node) <= step < len(node):
                    return None
                node = node[step]
            else:
                if not isinstance(node, dict) or step not in node:
                    return None
                node = node[step]
        return node

    @property
    def delivery_count(self) -> int:
        """Failed deliveries before now (x-delivery-count; 0 when absent)."""
        return _as_int(self.headers.get("x-delivery-count")) or 0

    @property
    def deliveries(self) -> int:
        """Deliveries before now: x-acquired-count (RabbitMQ 4.3+, counts every return,
        nack included) when the broker sets it, else x-delivery-count."""
        acquired = _as_int(self.headers.get("x-acquired-count"))
        return acquired if acquired is not None else self.delivery_count

    def header(self, name: str) -> Any:
        return _text(self.headers.get(name))

    @property
    def bot(self) -> int | None:
        return _as_int(self.header(contract.H_BOT))

    @property
    def user(self) -> int | None:
        return _as_int(self.header(contract.H_USER))

    @property
    def actor(self) -> str:
        bot = self.bot
        if bot is not None:
            return f"bot:{bot}"
        user = self.user
        return f"user:{user}" if user is not None else "unknown"

    def moved_here(self) -> bool:
        """Whether likkerctl moved this message into the queue it was read from."""
        return self.queue is not None and self._moved_from() is not None

    def _moved_from(self) -> str | None:
        if self.header(H_MOVED_TO) == self.queue:
            return str(self.header(H_MOVED_FROM) or "")
        shovelled = self.headers.get("x-shovelled")
        for entry in shovelled if isinstance(shovelled, list) else []:
            name = _text(entry.get("shovel-name")) if isinstance(entry, Mapping) else None
            if isinstance(name, str) and name.startswith(SHOVEL_MARK):
                _run, _, route = name.partition(">")
                source, _, destination = route.rpartition(">")
                if destination == self.queue:
                    return source
        return None

    @property
    def reason(self) -> str:
        """Why the message is where it is: moved there by an operator, our failure header,
        else the broker's x-death reason; `unknown` when none says."""
        if self.moved_here():
            return OPERATOR
        value = self.header(contract.H_FAILURE)
        if value:
            return str(value)
        deaths = self.headers.get("x-death")
        if isinstance(deaths, list) and deaths and isinstance(deaths[0], Mapping):
            reason = _text(deaths[0].get("reason"))
            if reason:
                return f"x-death:{reason}"
        return "unknown"

    def origin(self) -> str | None:
        """The queue this message came from: where an operator moved it from, else the
        queue it was dead-lettered from (x-death, newest first); None when unknown."""
        moved_from = self._moved_from() if self.queue is not None else None
        if moved_from:
            return moved_from
        first = self.header("x-first-death-queue")
        deaths = self.headers.get("x-death")
        if isinstance(deaths, list) and deaths and isinstance(deaths[0], Mapping):
            queue = _text(deaths[0].get("queue"))
            if queue:
                return str(queue)
        return str(first) if first else None


def known_fields(aliases: Mapping[str, str]) -> str:
    return ", ".join([*aliases, *COMPUTED, *PROPERTIES, "header.NAME", "body.PATH"])


def parse_field(text: str, aliases: Mapping[str, str] | None = None) -> Field:
    """A field from its spelling; raises FieldError (exit 2) for an unknown one."""
    aliases = LIKKER_ALIASES if aliases is None else aliases
    name = text.strip()
    lowered = name.lower()
    if lowered in COMPUTED:
        return Field(lowered, lowered)
    if lowered in aliases:
        target = parse_field(aliases[lowered], {})
        return Field(lowered, target.kind, target.path, lowered in INT_ALIASES)
    if lowered in PROPERTIES:
        return Field(lowered, "property", (lowered,))
    if lowered == "body":
        return Field("body", "body")
    for prefix in ("header", "body"):
        if lowered.startswith(prefix) and name[len(prefix) : len(prefix) + 1] in (".", "["):
            rest = name[len(prefix) :]
            path = _path(rest)
            if path is None or (prefix == "header" and any(isinstance(p, int) for p in path)):
                raise FieldError(f'bad field {name!r}: write {prefix}.NAME or {prefix}."NAME"')
            if prefix == "header":
                return Field(name, "header", (".".join(str(p) for p in path),))
            return Field(name, "body", path)
    raise FieldError(f"unknown field {name!r} (expected a field: {known_fields(aliases)})")


def _path(rest: str) -> tuple[str | int, ...] | None:
    steps: list[str | int] = []
    pos = 0
    while pos < len(rest):
        m = _SEGMENTS.match(rest, pos)
        if not m:
            return None
        seg = m.group(0)
        inner = seg[1:] if seg.startswith(".") else seg[1:-1]
        if inner[:1] in ('"', "'"):
            steps.append(inner[1:-1])
        elif seg.startswith("[") and inner.isdigit():
            steps.append(int(inner))
        else:
            steps.append(inner)
        pos = m.end()
    return tuple(steps) if steps else None


class FieldError(InvalidInput):
    """An unknown or malformed field name (exit 2)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "field")


def aliases_of(extra: Mapping[str, str] | None) -> dict[str, str]:
    """The Likker aliases plus a profile's own (which may redefine them); each checked."""
    merged = dict(LIKKER_ALIASES)
    for name, target in (extra or {}).items():
        key = name.lower()
        if key in COMPUTED or key in PROPERTIES or not re.fullmatch(r"[a-z_][a-z0-9_\-]*", key):
            raise FieldError(f"alias {name!r}: not a usable name (or a built-in field's)")
        parse_field(target, {})  # an alias names a header, property or body path
        merged[key] = target
    return merged


def display(value: Any) -> str:
    """A field's value in a table cell or a ranking key."""
    if value is None:
        return "-"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return str(value)


def key_of(value: Any) -> Any:
    """A hashable form of a value, for grouping (`top --by body.tags`)."""
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return value


def equals(name: str, shown: str) -> str:
    """A --where selecting a field's value as `display()` showed it (numbers unquoted)."""
    if shown == "-":
        return f"{name} missing"
    if re.fullmatch(r"-?\d+(\.\d+)?", shown):
        return f"{name} = {shown}"
    if '"' not in shown:
        return f'{name} = "{shown}"'
    single = shown.replace("'", "")
    return f"{name} = '{single}'"
