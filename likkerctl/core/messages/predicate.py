"""`--where` predicates: a small grammar to select messages by actor, post, action, deliveries.

    predicate  := clause ("or" clause)*
    clause     := term ("and" term)*
    term       := "not" term | "(" predicate ")" | comparison
    comparison := FIELD OP VALUE | FIELD "in" "(" VALUE ("," VALUE)* ")"
    FIELD      := bot | user | post | action | actor | reason | deliveries | redelivered
    OP         := = | == | != | < | <= | > | >=
    VALUE      := integer | word | "quoted string" | none | true | false

Examples: `bot=42`, `user in (7, 9) and deliveries >= 10`, `actor=bot:42 or post=3`,
`bot=none` (human likes), `reason=forbidden` (dead letters).

Fields read the contract's headers (DESIGN §4): bot `likker-bot`, user `likker-user`, post
`likker-post`, action `likker-action`, reason `likker-failure`; `deliveries` is the quorum
queue's `x-delivery-count` (0 when absent); `actor=bot:N` is `bot=N`, `actor=user:N` is
`user=N and bot=none`.

A predicate made only of `=`/`in` on bot, user, post, action or reason, joined by `and`/`or`,
compiles to headers-exchange bindings, so the broker itself can select (`bindings()`).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from likkerctl.core import contract
from likkerctl.core.errors import InvalidInput

HEADER_FIELDS = {
    "bot": contract.H_BOT,
    "user": contract.H_USER,
    "post": contract.H_POST,
    "action": contract.H_ACTION,
    "reason": contract.H_FAILURE,
}
INT_FIELDS = {"bot", "user", "post", "deliveries"}
FIELDS = (*HEADER_FIELDS, "actor", "deliveries", "redelivered")
OPS = ("=", "==", "!=", "<=", ">=", "<", ">")
MAX_BINDINGS = 64

Value = int | str | bool | None


class PredicateError(InvalidInput):
    """A bad predicate: says what and where, with a caret under the spot."""

    def __init__(self, text: str, pos: int, message: str) -> None:
        super().__init__(
            f"bad predicate: {message} at column {pos + 1}\n  {text}\n  {' ' * pos}^", "where"
        )
        self.pos = pos


@dataclass(frozen=True)
class Message:
    """What a predicate sees of a message."""

    headers: Mapping[str, Any]
    redelivered: bool = False

    def field(self, name: str) -> Value:
        if name == "deliveries":
            return _as_int(self.headers.get("x-delivery-count")) or 0
        if name == "redelivered":
            return self.redelivered
        raw = self.headers.get(HEADER_FIELDS[name])
        if isinstance(raw, bytes):
            raw = raw.decode(errors="replace")
        if name in INT_FIELDS:
            return _as_int(raw)
        return None if raw is None else str(raw)


def _as_int(raw: Any) -> int | None:
    if raw is None or isinstance(raw, bool):
        return None
    try:
        return int(raw)
    except (TypeError, ValueError):
        return None


# -- AST ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Cmp:
    field: str
    op: str
    values: tuple[Value, ...]  # several for `in`

    def __call__(self, msg: Message) -> bool:
        actual = msg.field(self.field)
        if self.op in ("=", "in"):
            return actual in self.values
        if self.op == "!=":
            return actual not in self.values
        if actual is None or not isinstance(actual, int):
            return False
        bound = self.values[0]
        assert isinstance(bound, int)
        return {
            "<": actual < bound,
            "<=": actual <= bound,
            ">": actual > bound,
            ">=": actual >= bound,
        }[self.op]


@dataclass(frozen=True)
class Not:
    inner: Node

    def __call__(self, msg: Message) -> bool:
        return not self.inner(msg)


@dataclass(frozen=True)
class And:
    parts: tuple[Node, ...]

    def __call__(self, msg: Message) -> bool:
        return all(p(msg) for p in self.parts)


@dataclass(frozen=True)
class Or:
    parts: tuple[Node, ...]

    def __call__(self, msg: Message) -> bool:
        return any(p(msg) for p in self.parts)


Node = Cmp | Not | And | Or


@dataclass(frozen=True)
class Predicate:
    text: str
    root: Node

    def __call__(self, msg: Message) -> bool:
        return self.root(msg)

    def matches(self, headers: Mapping[str, Any] | None, redelivered: bool = False) -> bool:
        return self.root(Message(headers or {}, redelivered))

    def bindings(self) -> list[dict[str, Any]] | None:
        """Headers-exchange binding arguments (x-match all) whose union is this predicate.

        None when the broker cannot evaluate it (comparisons, `!=`, `not`, absent headers,
        delivery counts: RabbitMQ's headers exchange ignores `x-` headers when matching).
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


def _dnf(node: Node) -> list[list[tuple[str, Any]]] | None:
    if isinstance(node, Cmp):
        if node.op not in ("=", "in") or node.field not in HEADER_FIELDS:
            return None
        if any(v is None or isinstance(v, bool) for v in node.values):
            return None
        return [[(HEADER_FIELDS[node.field], v)] for v in node.values]
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
    r"\s*(?:(?P<op>==|!=|<=|>=|=|<|>)|(?P<punct>[(),])|(?P<str>\"[^\"]*\"|'[^']*')"
    r"|(?P<word>[A-Za-z0-9_:.\-]+))"
)


def _tokenize(text: str) -> list[tuple[str, str, int]]:
    tokens = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m:
            start = len(text) - len(text[pos:].lstrip())
            raise PredicateError(text, start, f"unexpected character {text[start]!r}")
        kind = m.lastgroup or ""
        start = m.start(kind)
        tokens.append((kind, m.group(kind), start))
        pos = m.end()
    tokens.append(("end", "", len(text)))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
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

    def comparison(self) -> Node:
        tok = self.next()
        name = tok[1].lower()
        if tok[0] != "word" or name not in FIELDS:
            raise self.fail(f"expected a field ({', '.join(FIELDS)})", tok)
        if self.keyword("in"):
            if self.peek()[:2] != ("punct", "("):
                raise self.fail("expected '(' after 'in'")
            self.next()
            values = [self.value(name)]
            while self.peek()[:2] == ("punct", ","):
                self.next()
                values.append(self.value(name))
            if self.peek()[:2] != ("punct", ")"):
                raise self.fail("expected ',' or ')'")
            self.next()
            return self._expand(name, "in", values, tok)
        op_tok = self.next()
        if op_tok[0] != "op":
            raise self.fail(f"expected an operator ({' '.join(OPS)}) or 'in' after {name}", op_tok)
        op = "=" if op_tok[1] == "==" else op_tok[1]
        if op in ("<", "<=", ">", ">=") and name not in INT_FIELDS:
            raise PredicateError(self.text, op_tok[2], f"{name} cannot be compared with {op}")
        value = self.value(name)
        if op in ("<", "<=", ">", ">=") and not isinstance(value, int):
            raise PredicateError(self.text, op_tok[2], f"{op} needs a number")
        return self._expand(name, op, [value], tok)

    def _expand(self, name: str, op: str, values: list[Value], tok: tuple[str, str, int]) -> Node:
        if name != "actor":
            return Cmp(name, "=" if op == "in" else op, tuple(values))
        # actor=bot:N is bot=N; actor=user:N is a human like of user N.
        options: list[Node] = []
        for v in values:
            kind, _, ident = str(v).partition(":")
            if kind == "bot":
                options.append(Cmp("bot", "=", (int(ident),)))
            else:
                options.append(And((Cmp("user", "=", (int(ident),)), Cmp("bot", "=", (None,)))))
        if op == "!=":
            return Not(options[0] if len(options) == 1 else Or(tuple(options)))
        if op not in ("=", "in"):
            raise PredicateError(self.text, tok[2], "actor supports only =, != and in")
        return options[0] if len(options) == 1 else Or(tuple(options))

    def value(self, name: str) -> Value:
        tok = self.next()
        kind, raw, pos = tok
        if kind == "str":
            text: str = raw[1:-1]
        elif kind == "word":
            text = raw
        else:
            raise self.fail(f"expected a value for {name}", tok)
        if kind == "word" and text.lower() == "none":
            if name in ("deliveries", "redelivered", "actor"):
                raise PredicateError(self.text, pos, f"{name} cannot be none")
            return None
        if name == "redelivered":
            if text.lower() not in ("true", "false"):
                raise PredicateError(self.text, pos, "redelivered is true or false")
            return text.lower() == "true"
        if name == "actor":
            if not re.fullmatch(r"(bot|user):\d+", text):
                raise PredicateError(self.text, pos, "actor is bot:ID or user:ID")
            return text
        if name in INT_FIELDS:
            try:
                return int(text)
            except ValueError:
                raise PredicateError(self.text, pos, f"{name} needs an integer id") from None
        return text


def parse(text: str) -> Predicate:
    """Parse a --where predicate; raise PredicateError (exit 2) pointing at the problem."""
    return Predicate(text, _Parser(text).parse())
