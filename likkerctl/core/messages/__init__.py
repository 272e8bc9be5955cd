"""Messages as likkerctl reads them: `--where` predicates, sampling a queue without removing
anything, and JSON-lines archives of what a purge took."""
