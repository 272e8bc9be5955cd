"""What the webhook received and what it did about it, in likkerctl's database.

One row per alert firing and per resolution: (fingerprint:startsAt, status) is unique, so a
notification delivered again (Alertmanager retries, HA pairs, five at once) finds its row
taken and runs nothing. The runbook's steps are in the audit log under the same alert key.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from likkerctl.core.store.engine import engine_for
from likkerctl.core.store.models import ReceivedAlert

if TYPE_CHECKING:  # pydantic only where payloads are parsed, not for every audit write
    from likkerctl.webhook.payload import Alert

# Outcomes of a received alert.
QUEUED, RUNNING = "queued", "running"


class Ledger:
    def __init__(self, url: str) -> None:
        self.engine = engine_for(url)

    def claim(
        self,
        alert: Alert,
        group_key: str,
        runbook: str | None,
        mode: str | None,
        outcome: str,
        received_at: datetime,
    ) -> int | None:
        """Record the alert; None when this firing (or resolution) was recorded before."""
        row = ReceivedAlert(
            received_at=received_at,
            alert_key=alert.key,
            status=alert.status,
            alertname=alert.name,
            fingerprint=alert.fingerprint,
            labels=dict(alert.labels),
            group_key=group_key,
            runbook=runbook,
            mode=mode,
            outcome=outcome,
            detail={},
            finished_at=None if outcome in (QUEUED, RUNNING) else received_at,
        )
        try:
            with Session(self.engine) as session, session.begin():
                session.add(row)
                session.flush()
                return row.id
        except IntegrityError:
            return None

    def finish(self, row_id: int, outcome: str, detail: dict[str, Any] | None = None) -> None:
        with Session(self.engine) as session, session.begin():
            row = session.get(ReceivedAlert, row_id)
            if row is None:
                return
            row.outcome = outcome
            if outcome not in (QUEUED, RUNNING):
                row.finished_at = datetime.now(UTC)
            if detail is not None:
                row.detail = detail

    def recent(self, limit: int = 50, alert: str | None = None) -> list[dict[str, Any]]:
        with Session(self.engine) as session:
            query = select(ReceivedAlert).order_by(ReceivedAlert.id.desc()).limit(limit)
            if alert:
                query = query.where(ReceivedAlert.alert_key == alert)
            return [r.as_json() for r in session.scalars(query)]
