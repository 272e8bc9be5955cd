"""Alertmanager v4 webhook payloads as Alertmanager 0.25 sends them (notify/webhook)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any


def alert(
    name: str = "LikkerTestAlert",
    *,
    status: str = "firing",
    fingerprint: str | None = None,
    starts_at: str | None = None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": name, "severity": "page", **(labels or {})},
        "annotations": {"summary": f"{name} test", **(annotations or {})},
        "startsAt": starts_at or datetime.now(UTC).isoformat(),
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else datetime.now(UTC).isoformat(),
        "generatorURL": "http://prometheus.example/graph?g0.expr=up",
        "fingerprint": fingerprint or uuid.uuid4().hex[:16],
    }


def notification(*alerts: dict[str, Any], receiver: str = "likkerctl") -> dict[str, Any]:
    first = alerts[0]
    return {
        "receiver": receiver,
        "status": "firing" if any(a["status"] == "firing" for a in alerts) else "resolved",
        "alerts": list(alerts),
        "groupLabels": {"alertname": first["labels"]["alertname"]},
        "commonLabels": dict(first["labels"]),
        "commonAnnotations": dict(first["annotations"]),
        "externalURL": "http://alertmanager.example:9093",
        "version": "4",
        "groupKey": "{}:{alertname=" + json.dumps(first["labels"]["alertname"]) + "}",
        "truncatedAlerts": 0,
    }


def body(*alerts: dict[str, Any]) -> bytes:
    return json.dumps(notification(*alerts)).encode()
