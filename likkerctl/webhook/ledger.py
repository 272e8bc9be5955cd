"""What the webhook received and what it did about it, in likkerctl's database.

One row per alert firing and per resolution: (fingerprint:startsAt, status) is unique, so a
notification delivered again (Alertmanager retries, HA pairs, five at once) finds its row
taken and runs nothing. The row's id is the run's (`webhook approve RUN`). While a runbook
runs, the row's detail is its checkpoint — which step it is in, those it finished, the
run's state, and which process owns it — so a restart after a crash knows where it stopped.
The runbook's steps are in the audit log under the same alert key.
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from likkerctl.core.contract.process import Start, is_process, start_of
from likkerctl.core.store import approvals
from likkerctl.core.store.engine import engine_for
from likkerctl.core.store.models import ReceivedAlert

if TYPE_CHECKING:  # pydantic only where payloads are parsed, not for every audit write
    from likkerctl.webhook.payload import Alert

# Outcomes of a received alert that are not final: waiting for a worker, running, waiting
# for a human's decision (approve mode).
QUEUED, RUNNING, PENDING = "queued", "running", approvals.PENDING
UNFINISHED = (QUEUED, RUNNING, PENDING)
# An alert of an incident whose runbook already runs (or ran): recorded, not run again.
SAME_INCIDENT = "same incident"


def this_process() -> dict[str, Any]:
    """Who owns a run: this process, by host, pid and start time (a recycled pid differs;
    the boot time keeps a wall-clock step from making a live owner look dead)."""
    start = start_of()
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "since": start.since,
        "boot": start.boot,
    }


def owner_alive(owner: dict[str, Any] | None) -> bool:
    """Whether the process that owns a run is still running (on another host: assumed so)."""
    if not owner or "pid" not in owner:
        return False
    if owner.get("host") != socket.gethostname():
        return True
    try:
        boot = owner.get("boot")
        recorded = Start(float(owner["since"]), None if boot is None else float(boot))
        return is_process(int(owner["pid"]), recorded)
    except (ValueError, TypeError, KeyError):
        return False


class Ledger:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = engine_for(url)

    def claim(
        self,
        alert: Alert,
        group_key: str,
        runbook: str | None,
        mode: str | None,
        outcome: str,
        received_at: datetime,
        detail: dict[str, Any] | None = None,
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
            detail=detail or {},
            finished_at=None if outcome in UNFINISHED else received_at,
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
            if outcome not in UNFINISHED:
                row.finished_at = datetime.now(UTC)
            if detail is not None:
                row.detail = detail

    def get(self, row_id: int) -> dict[str, Any] | None:
        with Session(self.engine) as session:
            row = session.get(ReceivedAlert, row_id)
            return row.as_json() if row else None

    def open_incident(
        self, group_key: str, runbook: str, labels: dict[str, str], since: datetime
    ) -> int | None:
        """The run already started for this incident, or None.

        An incident is one alert firing on several nodes: the same labels but `instance`
        (the disk alert of each node of a cluster). Its run is that of the first of them:
        the same runbook, the same Alertmanager group, received since `since`, its alert
        not resolved since. Alerts without an `instance` are each their own incident.
        """
        instance = labels.get("instance")
        if instance is None:
            return None
        rest = {k: v for k, v in labels.items() if k != "instance"}
        with Session(self.engine) as session:
            runs = session.scalars(
                select(ReceivedAlert)
                .where(
                    ReceivedAlert.group_key == group_key,
                    ReceivedAlert.runbook == runbook,
                    ReceivedAlert.status == "firing",
                    ReceivedAlert.received_at >= since,
                    ReceivedAlert.outcome != SAME_INCIDENT,
                )
                .order_by(ReceivedAlert.id)
            ).all()
            runs = [
                r
                for r in runs
                if r.labels.get("instance") not in (None, instance)
                and {k: v for k, v in r.labels.items() if k != "instance"} == rest
            ]
            resolved = set(
                session.scalars(
                    select(ReceivedAlert.alert_key).where(
                        ReceivedAlert.alert_key.in_([r.alert_key for r in runs]),
                        ReceivedAlert.status == "resolved",
                    )
                )
            )
        return next((r.id for r in runs if r.alert_key not in resolved), None)

    def unfinished(self) -> list[dict[str, Any]]:
        """Runs not finished (queued, running, pending), oldest first."""
        with Session(self.engine) as session:
            query = (
                select(ReceivedAlert)
                .where(ReceivedAlert.outcome.in_(UNFINISHED))
                .order_by(ReceivedAlert.id)
            )
            return [r.as_json() for r in session.scalars(query)]

    def recent(
        self, limit: int = 50, alert: str | None = None, pending: bool = False
    ) -> list[dict[str, Any]]:
        """Newest first, each with its `approval` (approve mode) or None."""
        with Session(self.engine) as session:
            query = select(ReceivedAlert).order_by(ReceivedAlert.id.desc()).limit(limit)
            if alert:
                query = query.where(ReceivedAlert.alert_key == alert)
            if pending:
                query = query.where(ReceivedAlert.outcome == PENDING)
            rows = [r.as_json() for r in session.scalars(query)]
        found = approvals.of_runs(self.url, [r["id"] for r in rows])
        return [{**r, "approval": found.get(r["id"])} for r in rows]
