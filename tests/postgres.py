"""One private PostgreSQL server per test session, started by the stack's own code.

Databases are cheap (`CREATE DATABASE` takes ~0.1 s), servers are not: tests that need
PostgreSQL ask the session's server for a database of their own.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import psycopg.sql

from stack import postgres, procs, supervisor
from stack.settings import POSTGRES_USER, Ports, StackSettings


@dataclass
class PostgresServer:
    settings: StackSettings
    record: procs.ProcRecord
    _names: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def _connect(self) -> psycopg.Connection:
        return psycopg.connect(
            host=self.settings.host,
            port=self.settings.ports.postgres,
            user=POSTGRES_USER,
            dbname="postgres",
            autocommit=True,
        )

    def new_database(self, prefix: str = "t") -> str:
        """A fresh, empty database; its SQLAlchemy URL."""
        name = f"{prefix}_{next(self._names)}"
        with self._connect() as conn:
            conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))
        return self.url(name)

    def url(self, database: str) -> str:
        return (
            f"postgresql+psycopg://{POSTGRES_USER}@{self.settings.host}:"
            f"{self.settings.ports.postgres}/{database}"
        )


@contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """Start a private server on a free port; stop it by pid and delete its cluster."""
    state = Path(tempfile.mkdtemp(prefix="likker-test-pg-"))
    settings = StackSettings(state_dir=state, ports=Ports(postgres=procs.free_port()))
    part = supervisor.postgres_part(settings)
    assert part.render is not None
    part.render()
    rec = procs.spawn(
        part.name,
        part.argv,
        log_path=state / "postgres.log",
        pid_dir=state / "pids",
        env=part.env,
        user=part.user,
        cwd=part.cwd,
    )
    try:
        assert procs.wait_until(part.ready, timeout=60, alive=rec.is_running), (
            f"the test PostgreSQL did not start: {postgres.failure(rec.log)}"
        )
        yield PostgresServer(settings, rec)
    finally:
        procs.stop(rec, timeout=part.stop_timeout, sig=part.stop_signal)
        postgres.wipe(settings)
        shutil.rmtree(state, ignore_errors=True)
