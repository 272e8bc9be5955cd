"""Generic fields in --where: headers, properties, JSON body paths, patterns, aliases."""

from __future__ import annotations

import json

import pika
import pytest

from likkerctl.cli.errors import USAGE, exit_code
from likkerctl.core.errors import InvalidInput
from likkerctl.core.messages.fields import (
    H_MOVED_FROM,
    H_MOVED_TO,
    Envelope,
    FieldError,
    aliases_of,
    parse_field,
)
from likkerctl.core.messages.predicate import PredicateError, check_bodies, parse


def celery_job(task: str, **body: object) -> Envelope:
    props = pika.BasicProperties(
        content_type="application/json",
        message_id="id-1",
        correlation_id="c-9",
        priority=3,
        timestamp=1_700_000_000,
        headers={"task": task, "retries": 2, "x-tenant": "acme", "odd name": "yes"},
    )
    raw = json.dumps({"tenant": "acme", "actor": {"user_id": 7}, "tags": ["a", "b"], **body})
    return Envelope(props.headers, props, raw.encode(), "jobs.resize", "jobs", False, "jobs")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('header.task = "app.poison"', True),
        ("header.task = app.poison", True),
        ("header.task = app.other", False),
        ('header."x-tenant" = acme', True),
        ("header.'odd name' = yes", True),
        ("header.retries = 2", True),
        ('header.retries = "2"', False),  # typed like the broker's bindings: int ≠ string
        ("header.retries >= 2 and header.retries < 3", True),
        ("header.absent missing", True),
        ("header.task exists and header.absent missing", True),
        ("header.absent = none", True),
        ("header.task ~ 'app.*'", True),
        ("header.task ~ app.p?ison", True),
        ("header.task ~ /^app\\.(poison|x)$/", True),
        ("header.task ~ /^poison/", False),
        ("routing_key = jobs.resize and exchange = jobs", True),
        ("routing_key ~ 'jobs.*'", True),
        ("message_id = id-1 and correlation_id = c-9", True),
        ("content_type = application/json", True),
        ("priority > 2 and timestamp >= 1700000000", True),
        ("size > 10", True),
        ("type missing and app_id missing", True),
        ("body.tenant = acme", True),
        ("body.actor.user_id = 7", True),
        ("body.actor.user_id in (1, 7)", True),
        ("body.actor.bot_id missing", True),
        ("body.tags[0] = a and body.tags[1] = b and body.tags[2] missing", True),
        ('body["tenant"] = acme', True),
        ("body ~ '*acme*'", True),
        ("deliveries = 0 and redelivered = false", True),
        ("not header.task = app.poison", False),
    ],
)
def test_generic_fields_evaluate_on_a_foreign_message(text: str, expected: bool) -> None:
    assert parse(text).matches(celery_job("app.poison")) is expected


def test_top_level_array_bodies_and_non_json_bodies() -> None:
    env = Envelope({}, None, b'["resize-9", 2]')
    assert parse("body[0] ~ /^resize-/ and body[1] = 2").matches(env)
    text = Envelope({}, {"content_type": "text/plain"}, b"plain words", queue="jobs")
    pred = parse("body.tenant = acme")
    with pytest.raises(InvalidInput) as info:
        check_bodies(pred, [celery_job("a"), text])
    assert "not JSON" in str(info.value) and exit_code(info.value) == USAGE
    check_bodies(parse("header.task = a"), [text])  # no body path: nothing to check


def test_header_equality_runs_at_broker_speed_and_the_rest_says_why_not() -> None:
    pred = parse('header.task = "app.poison" or header.task in (a, b)')
    assert pred.bindings() == [
        {"x-match": "all", "task": "app.poison"},
        {"x-match": "all", "task": "a"},
        {"x-match": "all", "task": "b"},
    ]
    assert pred.client_reason() is None
    reasons = {
        "body.tenant = acme": "body",
        'header."x-tenant" = acme': "ignores x- headers",
        "routing_key = jobs": "property",
        "header.task ~ 'a*'": "pattern",
        "header.task exists": "exists",
        "deliveries > 3": "comparisons",
        "reason = operator": "several headers",
        "not header.task = a": "'not'",
    }
    for text, says in reasons.items():
        pred = parse(text)
        assert pred.bindings() is None, text
        reason = pred.client_reason()
        assert reason is not None and says in reason, (text, reason)


def test_profile_aliases_extend_and_replace_the_likker_ones() -> None:
    aliases = aliases_of({"tenant": "header.x-tenant", "job": "body.actor.user_id"})
    assert parse("tenant = acme and job = 7", aliases).matches(celery_job("x"))
    assert parse("bot = 42", aliases).bindings() == [{"x-match": "all", "likker-bot": 42}]
    assert parse_field("tenant", aliases).header == "x-tenant"
    with pytest.raises(PredicateError) as info:
        parse("tenant = acme")  # not an alias without the profile
    assert "unknown field 'tenant'" in str(info.value)
    for bad in ({"deliveries": "header.x"}, {"t": "nothing.here"}, {"a b": "header.x"}):
        with pytest.raises(FieldError):
            aliases_of(bad)


def test_operator_marker_and_origin_depend_on_the_queue_the_message_is_in() -> None:
    headers = {H_MOVED_TO: "jobs.parked", H_MOVED_FROM: "jobs", "likker-failure": "forbidden"}
    parked = Envelope(headers, queue="jobs.parked")
    assert parked.reason == "operator" and parked.origin() == "jobs"
    assert parse("reason = operator").matches(parked)
    # Moved on since: the marker names another queue, so the older reason shows again.
    elsewhere = Envelope(headers, queue="likker.actions.dlq")
    assert elsewhere.reason == "forbidden"
    dead = Envelope({"x-death": [{"queue": "likker.actions", "reason": "rejected"}]}, queue="d")
    assert dead.reason == "x-death:rejected" and dead.origin() == "likker.actions"


def test_deliveries_prefer_the_acquired_count_of_rabbitmq_4_3() -> None:
    assert Envelope({"x-delivery-count": 2}).deliveries == 2
    assert Envelope({"x-delivery-count": 0, "x-acquired-count": 40}).deliveries == 40


def test_a_broker_engine_move_is_told_by_its_shovel_name() -> None:
    entry = {"shovel-name": "likkerctl-move-abc123>jobs>jobs.parked", "shovel-type": "dynamic"}
    moved = Envelope({"x-shovelled": [entry]}, queue="jobs.parked")
    assert moved.reason == "operator" and moved.origin() == "jobs"
    kept = Envelope({"x-shovelled": [entry]}, queue="jobs")  # sent back to the source
    assert kept.reason == "unknown" and kept.origin() is None


def test_a_shown_value_becomes_a_predicate_selecting_it() -> None:
    from likkerctl.core.messages.fields import equals

    job = celery_job("app.poison")
    for name in ("header.task", "header.retries", "body.tenant", "body.actor.user_id"):
        shown = fields_display(parse_field(name).value(job))
        assert parse(equals(name, shown)).matches(job), (name, shown)
    assert parse(equals("header.absent", "-")).matches(job)
    assert equals("header.q", 'say "hi"') == "header.q = 'say \"hi\"'"


def fields_display(value: object) -> str:
    from likkerctl.core.messages.fields import display

    return display(value)
