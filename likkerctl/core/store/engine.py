"""One engine per database URL per process, with every table created on first use."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from likkerctl.core.errors import Failed
from likkerctl.core.store import models

_engines: dict[str, Engine] = {}
# The dashboard's workers open the database from several threads at once; two concurrent
# create_all() calls race on SQLite ("table already exists").
_lock = threading.Lock()


def engine_for(url: str) -> Engine:
    """One engine per URL per process, with every table created."""
    with _lock:
        if url not in _engines:
            if url.startswith("sqlite:///"):
                Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            try:
                engine = create_engine(url)
                models.Base.metadata.create_all(engine)
            except SQLAlchemyError as exc:
                raise Failed(
                    f"likkerctl database {url!r} unusable: {exc.__class__.__name__}"
                ) from exc
            _engines[url] = engine
        return _engines[url]
