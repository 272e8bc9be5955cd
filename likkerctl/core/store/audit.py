"""The audit log: every mutating command and every dry run, with who, what and the result.

SQLAlchemy, so it is SQLite in the state dir by default and any database by URL
(`audit_db_url`). Rows are written when the action ends, including when it fails or is
interrupted; a run that dies by kill -9 leaves its `started` row with result `running`.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from likkerctl.core.errors import LikkerError
from likkerctl.core.store.engine import engine_for
from likkerctl.core.store.models import AuditEntry


class Action:
    """An audit row being written: fill `counts`, then it is closed by `audited()`."""

    def __init__(self, engine: Engine, entry_id: int) -> None:
        self.engine = engine
        self.id = entry_id
        self.counts: dict[str, Any] = {}


def os_user() -> str:
    """Who runs this process, as the audit log names them."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@contextmanager
def audited(
    url: str,
    *,
    profile: str,
    command: str,
    params: dict[str, Any],
    dry_run: bool,
    alert: str | None = None,
    runbook: dict[str, Any] | None = None,
) -> Iterator[Action]:
    """Write a `running` row now and its result when the block ends (ok/failed/interrupted).

    `runbook` (a runbook step's row: its runbook, mode, run and approver) is kept in the
    row's counts, written at once so even a row left `running` says whose it was.
    """
    engine = engine_for(url)
    clean = json.loads(json.dumps(params, default=str))
    tags = {"runbook": json.loads(json.dumps(runbook, default=str))} if runbook else {}
    with Session(engine) as session, session.begin():
        entry = AuditEntry(
            started_at=datetime.now(UTC),
            os_user=os_user(),
            profile=profile,
            command=command,
            params=clean,
            dry_run=dry_run,
            result="running",
            counts=dict(tags),
            alert=alert,
        )
        session.add(entry)
        session.flush()
        action = Action(engine, entry.id)
        action.counts.update(tags)
    result, error = "ok", None
    try:
        yield action
    except KeyboardInterrupt:
        result, error = "interrupted", "interrupted by the operator"
        raise
    except LikkerError as exc:
        result, error = "failed", str(exc).splitlines()[0]
        raise
    except Exception as exc:
        result, error = "failed", f"{type(exc).__name__}: {exc}"
        raise
    finally:
        if action.counts.get("interrupted"):
            result = "interrupted"
        if action.counts.get("error") and result == "ok":
            result, error = "failed", str(action.counts["error"])
        with Session(engine) as session, session.begin():
            row = session.get(AuditEntry, action.id)
            if row is not None:
                row.finished_at = datetime.now(UTC)
                row.result = result
                row.counts = json.loads(json.dumps(action.counts, default=str))
                row.error = error


def mark_interrupted(url: str, alert: str, error: str) -> list[int]:
    """Close the rows of `alert` left `running` by a process that died (kill -9, a crash):
    result `interrupted` with `error`. Returns their ids."""
    engine = engine_for(url)
    with Session(engine) as session, session.begin():
        rows = session.scalars(
            select(AuditEntry).where(AuditEntry.alert == alert, AuditEntry.result == "running")
        ).all()
        for row in rows:
            row.result, row.error = "interrupted", error
            row.finished_at = datetime.now(UTC)
        return [r.id for r in rows]


def entries(
    url: str, limit: int = 50, command: str | None = None, alert: str | None = None
) -> list[dict[str, Any]]:
    engine = engine_for(url)
    with Session(engine) as session:
        query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
        if command:
            query = query.where(AuditEntry.command == command)
        if alert:
            query = query.where(AuditEntry.alert == alert)
        return [e.as_json() for e in session.scalars(query)]
