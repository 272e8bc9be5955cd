"""--where grammar: parsing, errors that point at the spot, evaluation, broker bindings."""

from __future__ import annotations

import pytest

from likkerctl.cli.errors import USAGE, exit_code
from likkerctl.core import contract
from likkerctl.core.messages.predicate import PredicateError, parse

BOT_MSG = {contract.H_BOT: 42, contract.H_USER: 7, contract.H_POST: 3, contract.H_ACTION: "like"}
HUMAN_MSG = {contract.H_USER: 7, contract.H_POST: 4, contract.H_ACTION: "like"}


@pytest.mark.parametrize(
    ("text", "bot", "human"),
    [
        ("bot=42", True, False),
        ("bot == 42", True, False),
        ("bot!=42", False, True),
        ("bot=none", False, True),
        ("user=7", True, True),
        ("user in (1, 7, 9)", True, True),
        ("post in (4)", False, True),
        ("actor=bot:42", True, False),
        ("actor=user:7", False, True),
        ("actor in (bot:1, user:7)", False, True),
        ("actor != bot:42", False, True),
        ("action=like and post=3", True, False),
        ("post=3 or post=4", True, True),
        ("not (post=3 or post=4)", False, False),
        ("deliveries >= 0 and deliveries < 1", True, True),
        ("redelivered=false", True, True),
        ('action="like"', True, True),
        ("BOT=42 AND User=7", True, False),
    ],
)
def test_evaluation(text: str, bot: bool, human: bool) -> None:
    pred = parse(text)
    assert pred.matches(BOT_MSG) is bot
    assert pred.matches(HUMAN_MSG) is human


def test_delivery_count_and_redelivered_come_from_the_broker() -> None:
    pred = parse("deliveries > 10 and redelivered = true")
    assert pred.matches({"x-delivery-count": 11}, redelivered=True)
    assert not pred.matches({"x-delivery-count": 11}, redelivered=False)
    assert not pred.matches({}, redelivered=True)  # absent count is 0


def test_reason_reads_the_failure_header_and_bytes_values() -> None:
    assert parse("reason=forbidden").matches({contract.H_FAILURE: b"forbidden"})
    assert not parse("reason=forbidden").matches({contract.H_FAILURE: "invalid"})


def test_header_only_predicates_compile_to_bindings() -> None:
    assert parse("bot=42").bindings() == [{"x-match": "all", contract.H_BOT: 42}]
    assert parse("bot in (1,2) and action=like").bindings() == [
        {"x-match": "all", contract.H_BOT: 1, contract.H_ACTION: "like"},
        {"x-match": "all", contract.H_BOT: 2, contract.H_ACTION: "like"},
    ]
    assert parse("reason=forbidden or post=9").bindings() == [
        {"x-match": "all", contract.H_FAILURE: "forbidden"},
        {"x-match": "all", contract.H_POST: 9},
    ]
    # A contradiction needs no binding at all (it matches nothing).
    assert parse("bot=1 and bot=2").bindings() == []


@pytest.mark.parametrize(
    "text",
    [
        "bot!=42",
        "bot=none",
        "not bot=42",
        "deliveries>5",
        "actor=user:7",  # needs "no bot header", which a headers exchange cannot match
        "redelivered=true",
        "bot in (1,2,3,4,5,6,7,8) and user in (1,2,3,4,5,6,7,8,9)",  # 72 bindings: too many
    ],
)
def test_predicates_the_broker_cannot_evaluate(text: str) -> None:
    assert parse(text).bindings() is None
    assert not parse(text).broker_side


@pytest.mark.parametrize(
    ("text", "column", "says"),
    [
        ("", 1, "expected a condition"),
        ("bot=", 5, "expected a value for bot"),
        ("bot=x", 5, "needs an integer"),
        ("color=red", 1, "expected a field"),
        ("bot=1 and", 10, "expected a field"),
        ("bot=1 bot=2", 7, "expected 'and', 'or' or the end"),
        ("reason>3", 7, "cannot be compared"),
        ("header.a ~ /(/", 13, "bad regular expression"),
        ("header.a ~ (", 12, "expected a glob"),
        ("body.x = /y/", 10, "a /regex/ must follow ~"),
        ("deliveries exists", 1, "always present"),
        ("size >= big", 6, "needs a number"),
        ("header..x = 1", 1, "bad field"),
        ("(bot=1", 7, "expected ')'"),
        ("bot in (1,", 11, "expected a value"),
        ("bot in 1", 8, "expected '('"),
        ("bot = $", 7, "unexpected character"),
        ("actor=robot:1", 7, "actor is bot:ID or user:ID"),
        ("deliveries=none", 12, "cannot be none"),
        ("redelivered=maybe", 13, "true or false"),
        ("deliveries>=x", 13, "needs an integer"),
    ],
)
def test_errors_point_at_the_problem(text: str, column: int, says: str) -> None:
    with pytest.raises(PredicateError) as info:
        parse(text)
    message = str(info.value)
    assert says in message and f"column {column}" in message
    assert exit_code(info.value) == USAGE
    # The caret sits under the column named.
    _, shown, caret = message.splitlines()
    assert caret.index("^") - 2 == column - 1 and shown.strip() == text.strip()
