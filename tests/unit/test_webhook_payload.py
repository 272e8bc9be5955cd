"""Only Alertmanager's v4 payload is accepted, and a rejection says which field is wrong."""

from __future__ import annotations

import json

import pytest

from likkerctl.webhook.payload import PayloadError, parse
from tests.alertmanager_payload import alert, notification


def test_a_real_alertmanager_payload_parses_with_its_alert_key() -> None:
    a = alert(
        "LikkerBrokerDiskFullWithinOneHour",
        fingerprint="2eb8a6ab7927091c",
        starts_at="2026-11-24T11:00:33.117Z",
    )
    note = parse(json.dumps(notification(a)).encode())
    assert note.status == "firing" and note.group_key.startswith("{}:")
    [got] = note.alerts
    assert got.name == "LikkerBrokerDiskFullWithinOneHour"
    assert got.key == "2eb8a6ab7927091c:2026-11-24T11:00:33.117000+00:00"


def test_the_same_instant_written_differently_is_the_same_key() -> None:
    a = parse(
        json.dumps(notification(alert(fingerprint="ab", starts_at="2026-11-24T11:00:33Z"))).encode()
    )
    b = parse(
        json.dumps(
            notification(alert(fingerprint="ab", starts_at="2026-11-24T12:00:33+01:00"))
        ).encode()
    )
    assert a.alerts[0].key == b.alerts[0].key


def _error(data: object) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    with pytest.raises(PayloadError) as exc:
        parse(raw)
    return str(exc.value)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda n: n.pop("version"), "version: this is not an Alertmanager v4"),
        (lambda n: n.update(version="3"), "version: this is not an Alertmanager v4"),
        (lambda n: n.update(alerts=[]), "alerts: List should have at least 1 item"),
        (lambda n: n["alerts"][0].pop("fingerprint"), "alerts[0].fingerprint: Field required"),
        (
            lambda n: n["alerts"][0].update(fingerprint="not hex!"),
            "alerts[0].fingerprint: String should match",
        ),
        (
            lambda n: n["alerts"][0].update(status="pending"),
            "alerts[0].status: Input should be 'firing' or 'resolved'",
        ),
        (
            lambda n: n["alerts"][0].update(startsAt="yesterday"),
            "alerts[0].startsAt: Input should be a valid datetime",
        ),
        (
            lambda n: n["alerts"][0]["labels"].update(severity=3),
            "alerts[0].labels.severity: Input should be a valid string",
        ),
        (
            lambda n: n.update(truncatedAlerts=-1),
            "truncatedAlerts: Input should be greater than or equal to 0",
        ),
    ],
)
def test_a_wrong_field_is_named(mutate: object, expected: str) -> None:
    note = notification(alert())
    mutate(note)  # type: ignore[operator]
    assert expected in _error(note)


def test_not_json_and_not_an_object_are_told_apart() -> None:
    assert _error(b'{"version": "4",').startswith("malformed JSON")
    assert _error(b"\xff\xfe").startswith("malformed JSON")
    assert "JSON object" in _error([notification(alert())])


def test_another_tools_webhook_is_refused() -> None:
    slack = {"text": "disk full", "channel": "#ops"}
    assert _error(slack).startswith("version: this is not an Alertmanager v4 webhook payload")
