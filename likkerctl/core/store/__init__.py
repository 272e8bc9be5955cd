"""likkerctl's own database: the audit log, the disk sampler's samples and the webhook's
ledger, on SQLAlchemy (SQLite in the state dir by default, any database by URL).

`base` holds the one declarative base, `models` every table, `engine` the per-URL engines
(tables created on first use), `audit` the audit log's writer and reader. SQLAlchemy is
heavy to import: callers that are not always about the database import this lazily.
"""
