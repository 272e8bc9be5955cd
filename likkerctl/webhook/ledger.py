"""What the webhook received and what it did about it, in likkerctl's database.

One row per alert firing and per resolution: (fingerprint:startsAt, status) is unique, so a
notification delivered again (Alertmanager retries, HA pairs, five at once) finds its row
taken and runs nothing. The runbook's steps are in the audit log under the same alert key.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, DateTime, Integer, String, UniqueConstraint, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from likkerctl.store import Base, engine_for

if TYPE_CHECKING:  # pydantic only where payloads are parsed, not for every audit write
    from likkerctl.webhook.payload import Alert

# Outcomes of a received alert.
QUEUED, RUNNING = "queued", "running"


class ReceivedAlert(Base):
    __tablename__ = "webhook_alerts"
    __table_args__ = (UniqueConstraint("alert_key", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    alert_key: Mapped[str] = mapped_column(String(200), index=True)
    status: Mapped[str] = mapped_column(String(20))  # firing | resolved
    alertname: Mapped[str] = mapped_column(String(200))
    fingerprint: Mapped[str] = mapped_column(String(64))
    labels: Mapped[dict[str, Any]] = mapped_column(JSON)
    group_key: Mapped[str] = mapped_column(String(1000))
    runbook: Mapped[str | None] = mapped_column(String(200))
    mode: Mapped[str | None] = mapped_column(String(20))
    outcome: Mapped[str] = mapped_column(String(20))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "received_at": _iso(self.received_at),
            "finished_at": _iso(self.finished_at),
            "seconds": (
                round((self.finished_at - self.received_at).total_seconds(), 3)
                if self.finished_at and self.received_at
                else None
            ),
            "alert": self.alert_key,
            "status": self.status,
            "alertname": self.alertname,
            "labels": self.labels,
            "group_key": self.group_key,
            "runbook": self.runbook,
            "mode": self.mode,
            "outcome": self.outcome,
            "detail": self.detail,
        }


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    # SQLite hands back naive datetimes; they were written in UTC.
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


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
