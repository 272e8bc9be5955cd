"""Alertmanager's v2 API: the alerts firing now (for status and the dashboard) and posting
an alert (the runbooks' escalation page)."""

from __future__ import annotations

from typing import Any

import requests

from likkerctl.core.errors import Unreachable
from likkerctl.core.profile import Profile


def firing_alerts(profile: Profile) -> dict[str, Any]:
    """`{"configured", "alerts"}`, or `{"configured", "error"}` when it does not answer.

    Never raises: a dead Alertmanager is something status reports, not a reason to fail.
    """
    if not profile.alertmanager_url:
        return {"configured": False, "alerts": []}
    url = f"{profile.alertmanager_url.rstrip('/')}/api/v2/alerts"
    try:
        resp = requests.get(
            url, params={"active": "true", "silenced": "false", "inhibited": "false"}, timeout=1
        )
        resp.raise_for_status()
        alerts = resp.json()
    except (requests.RequestException, ValueError) as exc:
        return {"configured": True, "error": f"unreachable at {url}: {type(exc).__name__}"}
    return {
        "configured": True,
        "alerts": [
            {
                "name": a.get("labels", {}).get("alertname"),
                "severity": a.get("labels", {}).get("severity"),
                "summary": a.get("annotations", {}).get("summary"),
                "startsAt": a.get("startsAt"),
                "fingerprint": a.get("fingerprint"),
                "labels": a.get("labels", {}),
                "annotations": a.get("annotations", {}),
            }
            for a in alerts
        ],
    }


def post_alert(base_url: str, alert: dict[str, Any], timeout: float = 5.0) -> int:
    """POST one alert; returns Alertmanager's HTTP status (raises Unreachable)."""
    url = f"{base_url.rstrip('/')}/api/v2/alerts"
    try:
        return requests.post(url, json=[alert], timeout=timeout).status_code
    except requests.RequestException as exc:
        raise Unreachable(
            f"Alertmanager unreachable at {base_url}: {type(exc).__name__}", base_url
        ) from exc
