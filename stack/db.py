"""SQLAlchemy engines for the stack's stores: SQLite in WAL mode by default, PostgreSQL
through psycopg 3, any other SQLAlchemy URL as it is."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url


def normalised_url(url: str) -> str:
    """`postgresql://...` would mean psycopg2, which we do not ship: use psycopg 3."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def redacted(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL at all: say nothing of it
        return "(unparsable URL)"


def make_engine(url: str, *, connect_timeout: float = 10.0) -> Engine:
    url = normalised_url(url)
    if url.startswith("postgresql"):
        return create_engine(
            url,
            pool_size=10,
            max_overflow=20,
            pool_pre_ping=True,
            # Timestamps are written naive in UTC (as in SQLite), whatever the server's zone.
            connect_args={
                "connect_timeout": max(1, round(connect_timeout)),
                "options": "-c timezone=UTC",
            },
        )
    if not url.startswith("sqlite"):
        return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 30},
        pool_size=10,
        max_overflow=20,
    )

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        # WAL lets readers run beside the single writer; NORMAL sync is durable in WAL mode
        # across process crashes (only an OS crash can lose the last transactions).
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    return engine
