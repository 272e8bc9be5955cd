"""Each interface maps the core's errors in one table: exit codes (CLI), HTTP (webhook)."""

from __future__ import annotations

import pytest

from likkerctl.cli import errors as exit_codes
from likkerctl.core import errors
from likkerctl.webhook.receiver import http_answer


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (errors.InvalidInput("bad --where"), exit_codes.USAGE),
        (errors.NotConfirmed("not confirmed"), exit_codes.USAGE),
        (errors.Unreachable("no answer", "http://x"), exit_codes.UNREACHABLE),
        (errors.AuthRefused("refused"), exit_codes.AUTH),
        (errors.NotFound("no queue 'q'", "q"), exit_codes.NOT_FOUND),
        (errors.Conflict("no shovel plugin"), exit_codes.CONFLICT),
        (errors.Failed("shovel terminated"), exit_codes.FAILED),
        (errors.Interrupted("interrupted"), exit_codes.INTERRUPTED),
        (errors.LikkerError("anything else of ours"), exit_codes.FAILED),
    ],
)
def test_every_core_error_has_its_documented_exit_code(
    error: errors.LikkerError, code: int
) -> None:
    assert exit_codes.exit_code(error) == code


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (errors.InvalidInput("bad"), 400),
        (errors.NotFound("gone"), 404),
        (errors.Conflict("busy"), 409),
        (errors.Unreachable("down"), 503),
        (errors.Failed("database unusable"), 503),
        (errors.AuthRefused("refused"), 500),
    ],
)
def test_the_webhook_answers_core_errors_with_their_status(
    error: errors.LikkerError, status: int
) -> None:
    assert http_answer(error)[0] == status


def test_an_error_shows_as_its_first_line_and_others_with_their_type() -> None:
    assert (
        errors.first_line(errors.InvalidInput("bad predicate\n  bot=\n      ^")) == "bad predicate"
    )
    assert errors.first_line(ValueError("boom")) == "ValueError: boom"
