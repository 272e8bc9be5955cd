"""likkerctl's own database (audit log, disk samples): SQLite in the state dir by default."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase

from likkerctl.errors import CliError


class Base(DeclarativeBase):
    pass


_engines: dict[str, Engine] = {}
# The dashboard's workers open the database from several threads at once; two concurrent
# create_all() calls race on SQLite ("table already exists").
_lock = threading.Lock()


def engine_for(url: str) -> Engine:
    """One engine per URL per process, with every table created."""
    with _lock:
        return _engine_for(url)


def _engine_for(url: str) -> Engine:
    if url not in _engines:
        # Importing the models registers their tables on Base.metadata.
        from likkerctl import audit, sampler  # noqa: F401
        from likkerctl.webhook import ledger  # noqa: F401

        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        try:
            engine = create_engine(url)
            Base.metadata.create_all(engine)
        except SQLAlchemyError as exc:
            raise CliError(
                f"likkerctl database {url!r} unusable: {exc.__class__.__name__}"
            ) from exc
        _engines[url] = engine
    return _engines[url]
