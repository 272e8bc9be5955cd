"""`--where` predicates: select messages by any field (headers, properties, JSON body).

    predicate  := clause ("or" clause)*
    clause     := term ("and" term)*
    term       := "not" term | "(" predicate ")" | comparison
    comparison := FIELD OP VALUE | FIELD "in" "(" VALUE ("," VALUE)* ")"
                | FIELD "~" PATTERN | FIELD "exists" | FIELD "missing"
    FIELD      := bot | user | post | action | actor | reason | deliveries | redelivered
                | header.NAME | header."NAME" | body.PATH | body[N] | a property
                  (routing_key, exchange, message_id, correlation_id, type, app_id,
                  content_type, priority, timestamp, size, ...) | a profile alias
    OP         := = | == | != | < | <= | > | >=
    VALUE      := number | word | "quoted string" | none | true | false
    PATTERN    := a glob ("app.*", quoted or not) | /a regular expression/

Examples: `bot=42`, `user in (7, 9) and deliveries >= 10`, `actor=bot:42 or post=3`,
`bot=none` (human likes), `reason=forbidden` (dead letters), `reason=operator` (moved by
an operator), `header.task = "app.poison"`, `header."x-tenant" = acme`,
`body.actor.user_id = 7`, `body[0] ~ /^resize-/`, `routing_key ~ "jobs.*"`,
`header.retries exists`, `size > 1000`.

The Likker fields are aliases: bot `header.likker-bot`, user `header.likker-user`, post
`header.likker-post`, action `header.likker-action` (ids compared as integers); a profile
adds its own (`[profiles.NAME.aliases]`, `tenant = "header.x-tenant"`). `reason` is
`operator` for a message likkerctl moved to the queue it is in, else the `likker-failure`
header, else `x-death:REASON`; `deliveries` is x-acquired-count (RabbitMQ 4.3+) or
x-delivery-count, 0 when absent; `actor=bot:N` is `bot=N`, `actor=user:N` is `user=N and
bot=none`. A body path on a body that is not JSON is an error before anything moves.

Only `=`/`in` on headers (not `x-` ones: the headers exchange ignores them when matching),
joined by `and`/`or`, run at broker speed: they compile to headers-exchange bindings
(`bindings()`). Anything else needs likkerctl to read each message (the client engine);
`client_reason()` says which part and why.
"""

from __future__ import annotations

import fnmatch
import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from likkerctl.core import contract
from likkerctl.core.errors import InvalidInput
from likkerctl.core.messages.fields import (
    FIELD_PATTERN,
    LIKKER_ALIASES,
    Envelope,
    Field,
    FieldError,
    NotJson,
    known_fields,
    parse_field,
)

OPS = ("=", "==", "!=", "<=", ">=", "<", ">", "~")
MAX_BINDINGS = 64

Value = int | float | str | bool | None


class PredicateError(InvalidInput):
    """A bad predicate: says what and where, with a caret under the spot."""

    def __init__(self, text: str, pos: int, message: str) -> None:
        super().__init__(
            f"bad predicate: {message} at column {pos + 1}\n  {text}\n  {' ' * pos}^", "where"
        )
        self.pos = pos


# -- AST ------------------------------------------------------------------------------
def _equal(actual: Any, expected: Value) -> bool:
    if expected is None:
        return actual is None
    if isinstance(actual, bool) or isinstance(expected, bool):
        return isinstance(actual, bool) and isinstance(expected, bool) and actual == expected
    return bool(actual == expected)


def _number(value: Any) -> float | int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value


@dataclass(frozen=True)
class Cmp:
    field: Field
    op: str  # = != < <= > >= ~ exists missing
    values: tuple[Value, ...] = ()  # several for `in`
    pattern: re.Pattern[str] | None = None

    def __call__(self, msg: Envelope) -> bool:
        actual = self.field.value(msg)
        op = self.op
        if op == "=":
            return any(_equal(actual, v) for v in self.values)
        if op == "!=":
            return not any(_equal(actual, v) for v in self.values)
        if op == "exists":
            return actual is not None
        if op == "missing":
            return actual is None
        if op == "~":
            assert self.pattern is not None
            return actual is not None and self.pattern.search(_as_text(actual)) is not None
        number = _number(actual)
        bound = self.values[0]
        if number is None or not isinstance(bound, (int, float)):
            return False
        return {
            "<": number < bound,
            "<=": number <= bound,
            ">": number > bound,
            ">=": number >= bound,
        }[op]


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class Not:
    inner: Node

    def __call__(self, msg: Envelope) -> bool:
        return not self.inner(msg)


@dataclass(frozen=True)
class And:
    parts: tuple[Node, ...]

    def __call__(self, msg: Envelope) -> bool:
        return all(p(msg) for p in self.parts)


@dataclass(frozen=True)
class Or:
    parts: tuple[Node, ...]

    def __call__(self, msg: Envelope) -> bool:
        return any(p(msg) for p in self.parts)


Node = Cmp | Not | And | Or


def _walk(node: Node) -> list[Cmp]:
    if isinstance(node, Cmp):
        return [node]
    if isinstance(node, Not):
        return _walk(node.inner)
    return [c for p in node.parts for c in _walk(p)]


@dataclass(frozen=True)
class Predicate:
    text: str
    root: Node

    def __call__(self, msg: Envelope) -> bool:
        return self.root(msg)

    def matches(self, msg: Envelope | Mapping[str, Any] | None, redelivered: bool = False) -> bool:
        """Whether a message matches; a plain mapping is taken as its headers.

        A body path on a body that is not JSON raises NotJson.
        """
        if not isinstance(msg, Envelope):
            msg = Envelope(msg or {}, redelivered=redelivered)
        return self.root(msg)

    @property
    def fields(self) -> list[Field]:
        return [c.field for c in _walk(self.root)]

    @property
    def reads_body(self) -> bool:
        return any(f.kind == "body" and f.path for f in self.fields)

    def bindings(self) -> list[dict[str, Any]] | None:
        """Headers-exchange binding arguments (x-match all) whose union is this predicate.

        None when the broker cannot evaluate it (see `client_reason`).
        """
        dnf = _dnf(self.root)
        if dnf is None or len(dnf) > MAX_BINDINGS:
            return None
        result = []
        for conj in dnf:
            args: dict[str, Any] = {"x-match": "all"}
            for header, value in conj:
                if header in args and args[header] != value:
                    break  # contradictory conjunction: matches nothing, needs no binding
                args[header] = value
            else:
                result.append(args)
        return result

    @property
    def broker_side(self) -> bool:
        return self.bindings() is not None

    def client_reason(self) -> str | None:
        """Why the broker cannot select by this predicate; None when it can."""
        for node in _walk(self.root):
            why = _why_not_broker(node)
            if why:
                return why
        if any(isinstance(n, Not) for n in _nodes(self.root)):
            return "'not' needs likkerctl to read each message"
        dnf = _dnf(self.root)
        if dnf is None:
            return "this combination cannot be written as headers-exchange bindings"
        if len(dnf) > MAX_BINDINGS:
            return f"it needs {len(dnf)} bindings (at most {MAX_BINDINGS})"
        return None


def _nodes(node: Node) -> list[Node]:
    if isinstance(node, Cmp):
        return [node]
    if isinstance(node, Not):
        return [node, *_nodes(node.inner)]
    return [node, *(n for p in node.parts for n in _nodes(p))]


def _binding_header(node: Cmp) -> str | None:
    f = node.field
    if f.kind == "header":
        return f.header
    if f.kind == "reason" and all(
        isinstance(v, str) and v not in ("operator", "unknown") and not v.startswith("x-death:")
        for v in node.values
    ):
        return contract.H_FAILURE
    return None


def _why_not_broker(node: Cmp) -> str | None:
    f = node.field
    label = f"{f.name} {node.op}"
    if node.op not in ("=",):
        what = {"~": "pattern matches", "exists": "exists", "missing": "missing"}.get(
            node.op, "comparisons other than = and in"
        )
        return f"'{label}': {what} need likkerctl to read each message"
    if f.kind == "body":
        return f"'{f.name}' is in the message body, which the broker does not read"
    if f.kind == "property":
        return f"'{f.name}' is a message property; a headers exchange matches headers only"
    if f.kind == "reason":
        if _binding_header(node) is None:
            return f"'reason' {node.values[0]!r} is read from several headers by likkerctl"
        return None
    if f.kind != "header":
        return f"'{f.name}' is counted by the broker per delivery, not a header it can match"
    header = f.header or ""
    if header.lower().startswith("x-"):
        return f"'{f.name}': the headers exchange ignores x- headers when matching"
    if any(v is None or isinstance(v, (bool, float)) for v in node.values):
        return f"'{f.name}': a binding cannot match an absent header, a boolean or a float"
    return None


def _dnf(node: Node) -> list[list[tuple[str, Any]]] | None:
    if isinstance(node, Cmp):
        if node.op != "=" or _why_not_broker(node):
            return None
        header = _binding_header(node)
        if header is None:
            return None
        return [[(header, v)] for v in node.values]
    if isinstance(node, Or):
        out: list[list[tuple[str, Any]]] = []
        for part in node.parts:
            sub = _dnf(part)
            if sub is None:
                return None
            out.extend(sub)
        return out
    if isinstance(node, And):
        subs = [_dnf(p) for p in node.parts]
        if any(s is None for s in subs):
            return None
        combos = 1
        for s in subs:
            combos *= len(s or [])
        if combos > MAX_BINDINGS:
            return None
        return [list(itertools.chain(*c)) for c in itertools.product(*(s or [] for s in subs))]
    return None


# -- parser ---------------------------------------------------------------------------
_TOKEN = re.compile(
    r"\s*(?:(?P<op>==|!=|<=|>=|=|<|>|~)|(?P<punct>[(),])|(?P<str>\"[^\"]*\"|'[^']*')"
    rf"|(?P<field>{FIELD_PATTERN})|(?P<regex>/(?:[^/\\]|\\.)*/)"
    r"|(?P<word>[A-Za-z0-9_:.\-*?+@][A-Za-z0-9_:.\-*?+@/\[\]]*))"
)


def _tokenize(text: str) -> list[tuple[str, str, int]]:
    tokens: list[tuple[str, str, int]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        start = len(text) - len(text[pos:].lstrip())
        if m and m.lastgroup == "regex" and not (tokens and tokens[-1][:2] == ("op", "~")):
            m = None  # /.../ is a pattern only after ~
        if not m:
            if text[start] == "/":
                raise PredicateError(text, start, "a /regex/ must follow ~ and end with /")
            raise PredicateError(text, start, f"unexpected character {text[start]!r}")
        kind = m.lastgroup or ""
        tokens.append((kind, m.group(kind), m.start(kind)))
        pos = m.end()
    tokens.append(("end", "", len(text)))
    return tokens


_NUMBER = re.compile(r"-?\d+(\.\d+)?")


class _Parser:
    def __init__(self, text: str, aliases: Mapping[str, str]) -> None:
        self.text = text
        self.aliases = aliases
        self.tokens = _tokenize(text)
        self.i = 0

    def peek(self) -> tuple[str, str, int]:
        return self.tokens[self.i]

    def next(self) -> tuple[str, str, int]:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def fail(self, message: str, tok: tuple[str, str, int] | None = None) -> PredicateError:
        tok = tok or self.peek()
        found = "the end" if tok[0] == "end" else repr(tok[1])
        return PredicateError(self.text, tok[2], f"{message}, found {found}")

    def keyword(self, word: str) -> bool:
        kind, value, _ = self.peek()
        if kind == "word" and value.lower() == word:
            self.i += 1
            return True
        return False

    def parse(self) -> Node:
        if self.peek()[0] == "end":
            raise self.fail("expected a condition such as bot=42")
        node = self.predicate()
        if self.peek()[0] != "end":
            raise self.fail("expected 'and', 'or' or the end")
        return node

    def predicate(self) -> Node:
        parts = [self.clause()]
        while self.keyword("or"):
            parts.append(self.clause())
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def clause(self) -> Node:
        parts = [self.term()]
        while self.keyword("and"):
            parts.append(self.term())
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def term(self) -> Node:
        if self.keyword("not"):
            return Not(self.term())
        if self.peek()[:2] == ("punct", "("):
            self.next()
            node = self.predicate()
            if self.peek()[:2] != ("punct", ")"):
                raise self.fail("expected ')'")
            self.next()
            return node
        return self.comparison()

    def field(self) -> tuple[Field, tuple[str, str, int]]:
        tok = self.next()
        if tok[0] not in ("word", "field"):
            raise self.fail(f"expected a field ({known_fields(self.aliases)})", tok)
        try:
            return parse_field(tok[1], self.aliases), tok
        except FieldError as exc:
            raise PredicateError(self.text, tok[2], str(exc)) from None

    def comparison(self) -> Node:
        field, tok = self.field()
        for word in ("exists", "missing"):
            if self.keyword(word):
                if field.kind in ("deliveries", "redelivered", "reason", "actor"):
                    raise PredicateError(self.text, tok[2], f"{field.name} is always present")
                return Cmp(field, word)
        if self.keyword("in"):
            if self.peek()[:2] != ("punct", "("):
                raise self.fail("expected '(' after 'in'")
            self.next()
            values = [self.value(field)]
            while self.peek()[:2] == ("punct", ","):
                self.next()
                values.append(self.value(field))
            if self.peek()[:2] != ("punct", ")"):
                raise self.fail("expected ',' or ')'")
            self.next()
            return self._expand(field, "=", values, tok)
        op_tok = self.next()
        if op_tok[0] != "op":
            raise self.fail(
                f"expected an operator ({' '.join(OPS)}), 'in', 'exists' or 'missing' "
                f"after {field.name}",
                op_tok,
            )
        op = "=" if op_tok[1] == "==" else op_tok[1]
        if op == "~":
            return self._pattern(field, op_tok)
        if op in ("<", "<=", ">", ">=") and field.kind in ("redelivered", "reason", "actor"):
            raise PredicateError(self.text, op_tok[2], f"{field.name} cannot be compared with {op}")
        value = self.value(field)
        if op in ("<", "<=", ">", ">=") and _number(value) is None:
            raise PredicateError(self.text, op_tok[2], f"{op} needs a number")
        return self._expand(field, op, [value], tok)

    def _pattern(self, field: Field, op_tok: tuple[str, str, int]) -> Node:
        if field.kind in ("redelivered", "deliveries"):
            raise PredicateError(self.text, op_tok[2], f"{field.name} cannot be matched with ~")
        kind, raw, pos = self.next()
        if kind == "regex":
            try:
                pattern = re.compile(raw[1:-1].replace("\\/", "/"))
            except re.error as exc:
                at = pos + 1 + (exc.pos or 0)
                raise PredicateError(self.text, at, f"bad regular expression: {exc.msg}") from None
        elif kind in ("str", "word", "field"):
            glob = raw[1:-1] if kind == "str" else raw
            pattern = re.compile(fnmatch.translate(glob), re.DOTALL)
        else:
            raise self.fail('expected a glob ("app.*") or a /regex/ after ~', (kind, raw, pos))
        return Cmp(field, "~", (), pattern)

    def _expand(
        self, field: Field, op: str, values: list[Value], tok: tuple[str, str, int]
    ) -> Node:
        if field.kind != "actor":
            return Cmp(field, op, tuple(values))
        # actor=bot:N is bot=N; actor=user:N is a human like of user N.
        bot = parse_field("bot", self.aliases)
        user = parse_field("user", self.aliases)
        options: list[Node] = []
        for v in values:
            kind, _, ident = str(v).partition(":")
            if kind == "bot":
                options.append(Cmp(bot, "=", (int(ident),)))
            else:
                options.append(And((Cmp(user, "=", (int(ident),)), Cmp(bot, "=", (None,)))))
        if op == "!=":
            return Not(options[0] if len(options) == 1 else Or(tuple(options)))
        if op != "=":
            raise PredicateError(self.text, tok[2], "actor supports only =, != and in")
        return options[0] if len(options) == 1 else Or(tuple(options))

    def value(self, field: Field) -> Value:
        tok = self.next()
        kind, raw, pos = tok
        name = field.name
        if kind == "str":
            text: str = raw[1:-1]
        elif kind in ("word", "field"):
            text = raw
        else:
            raise self.fail(f"expected a value for {name}", tok)
        word = kind != "str"
        if word and text.lower() == "none":
            if field.kind in ("deliveries", "redelivered", "actor"):
                raise PredicateError(self.text, pos, f"{name} cannot be none")
            return None
        if field.kind == "redelivered":
            if text.lower() not in ("true", "false"):
                raise PredicateError(self.text, pos, "redelivered is true or false")
            return text.lower() == "true"
        if field.kind == "actor":
            if not re.fullmatch(r"(bot|user):\d+", text):
                raise PredicateError(self.text, pos, "actor is bot:ID or user:ID")
            return text
        if field.as_int or field.kind == "deliveries":
            try:
                return int(text)
            except ValueError:
                raise PredicateError(self.text, pos, f"{name} needs an integer") from None
        if field.kind == "reason":
            return text
        if word and _NUMBER.fullmatch(text):
            return float(text) if "." in text else int(text)
        if word and text.lower() in ("true", "false"):
            return text.lower() == "true"
        return text


def parse(text: str, aliases: Mapping[str, str] | None = None) -> Predicate:
    """Parse a --where predicate; raise PredicateError (exit 2) pointing at the problem.

    `aliases`: field names the profile defines (default: the Likker contract's).
    """
    return Predicate(text, _Parser(text, LIKKER_ALIASES if aliases is None else aliases).parse())


def check_bodies(pred: Predicate | None, samples: list[Envelope]) -> None:
    """Refuse (exit 2) a predicate reading body paths when a sampled body is not JSON."""
    if pred is None or not pred.reads_body:
        return
    for env in samples:
        if not env.is_json:
            ident = env.prop("message_id") or "without a message id"
            raise InvalidInput(
                f"--where {pred.text!r} reads the JSON body, but message {ident} in "
                f"{env.queue} is not JSON (content_type {env.prop('content_type')!r}); "
                "nothing was moved",
                "where",
            )


__all__ = ["NotJson", "Predicate", "PredicateError", "check_bodies", "parse"]
