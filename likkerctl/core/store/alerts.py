"""The webhook's ledger read from elsewhere (the dashboard): under which key, and in which
run, the webhook filed an alert Alertmanager reports firing.

Alertmanager's API gives an alert's startsAt to the millisecond, its webhook payload to the
nanosecond, and the key is fingerprint:startsAt as the payload had it; so the dashboard finds
the webhook's key by fingerprint and the millisecond, to file its own steps beside the
webhook's.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any


def alert_key(fingerprint: str, starts_at: datetime) -> str:
    """One firing of one alert (Alertmanager keeps startsAt until it resolves)."""
    return f"{fingerprint}:{starts_at.astimezone(UTC).isoformat()}"


def filed(url: str, fingerprint: str, starts_at: datetime) -> dict[str, Any] | None:
    """The webhook's ledger row of this firing (its `alert` is the key), if it got it."""
    # SQLAlchemy only here: the webhook's payload parser imports alert_key.
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    # (the engine and tables import SQLAlchemy too)
    from likkerctl.core.store.engine import engine_for
    from likkerctl.core.store.models import ReceivedAlert

    with Session(engine_for(url)) as session:
        rows = session.scalars(
            select(ReceivedAlert)
            .where(ReceivedAlert.fingerprint == fingerprint, ReceivedAlert.status == "firing")
            .order_by(ReceivedAlert.id.desc())
            .limit(20)
        )
        for row in rows:
            try:
                at = datetime.fromisoformat(row.alert_key.partition(":")[2])
            except ValueError:
                continue
            if abs(at - starts_at) < timedelta(milliseconds=1):
                return row.as_json()
    return None
