"""Every table of likkerctl's own database: the audit log, disk samples, the webhook's ledger
and the decisions on the runs it planned in approve mode."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from likkerctl.core.store.base import Base

__all__ = ["AuditEntry", "Base", "DiskSample", "ReceivedAlert", "RunApproval"]


class AuditEntry(Base):
    __tablename__ = "audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    os_user: Mapped[str] = mapped_column(String(100))
    profile: Mapped[str] = mapped_column(String(100))
    command: Mapped[str] = mapped_column(String(100), index=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    dry_run: Mapped[bool] = mapped_column()
    result: Mapped[str] = mapped_column(String(20))  # running, ok, failed, interrupted
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    # Set when the webhook ran the command for an alert (fingerprint:startsAt).
    alert: Mapped[str | None] = mapped_column(String(200), index=True)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "os_user": self.os_user,
            "profile": self.profile,
            "command": self.command,
            "params": self.params,
            "dry_run": self.dry_run,
            "result": self.result,
            "counts": self.counts,
            "error": self.error,
            "alert": self.alert,
        }


class DiskSample(Base):
    __tablename__ = "disk_samples"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mgmt_url: Mapped[str] = mapped_column(String(300), index=True)
    node: Mapped[str] = mapped_column(String(200))
    t: Mapped[float] = mapped_column(Float, index=True)
    free: Mapped[float] = mapped_column(Float)
    limit: Mapped[float] = mapped_column(Float)
    alarm: Mapped[bool] = mapped_column()


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


class RunApproval(Base):
    """A run the webhook planned in approve mode, and the decision on it.

    Its own table, not columns of `webhook_alerts`: `create_all` adds tables to an existing
    database, never columns. One row per run (`run_id`, the ledger row, is unique); the
    decision is taken by a conditional update (`decision IS NULL`, before `deadline`), so of
    two approvals, or an approval racing the deadline, exactly one wins.
    """

    __tablename__ = "runbook_approvals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(Integer, unique=True)  # webhook_alerts.id
    alert_key: Mapped[str] = mapped_column(String(200), index=True)
    alertname: Mapped[str] = mapped_column(String(200))
    runbook: Mapped[str] = mapped_column(String(200))
    target: Mapped[str] = mapped_column(String(300))
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Epoch seconds: compared inside the conditional update, the same on every database.
    deadline: Mapped[float] = mapped_column(Float)
    timeout_s: Mapped[float] = mapped_column(Float)
    # The alert as received (labels, annotations...), so a restarted webhook can still run it.
    alert: Mapped[dict[str, Any]] = mapped_column(JSON)
    # The plan: every step's dry run, in order, and the state it left (the offenders found).
    plan: Mapped[dict[str, Any]] = mapped_column(JSON)
    decision: Mapped[str | None] = mapped_column(String(20))  # approved | rejected | expired
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    decided_by: Mapped[str | None] = mapped_column(String(200))  # --by NAME, else the OS user
    os_user: Mapped[str | None] = mapped_column(String(100))
    reason: Mapped[str | None] = mapped_column(Text)

    def as_json(self) -> dict[str, Any]:
        return {
            "run": self.run_id,
            "alert": self.alert_key,
            "alert_info": self.alert,
            "alertname": self.alertname,
            "runbook": self.runbook,
            "target": self.target,
            "requested_at": _iso(self.requested_at),
            "expires_at": datetime.fromtimestamp(self.deadline, UTC).isoformat(),
            "deadline": self.deadline,
            "timeout_s": self.timeout_s,
            "plan": self.plan,
            "decision": self.decision,
            "decided_at": _iso(self.decided_at),
            "decided_by": self.decided_by,
            "os_user": self.os_user,
            "reason": self.reason,
        }


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    # SQLite hands back naive datetimes; they were written in UTC.
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
