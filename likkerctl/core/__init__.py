"""The core: what likkerctl knows and does, with no user interface in it.

Layers, each importing only those below it (checked by import-linter, see pyproject.toml):

- `operations`: every action that changes something, planned, confirmed and audited once.
- the domain: `status` (rows and the rules derived from them), `readings` (what status and
  the dashboard read, live or recorded), `readable` (how figures read), `messages/`
  (predicates, sampling, archives), `move/` (the lossless move engines), `disk/` (the
  disk-full forecast and where its samples come from).
- `clients/`: thin adapters for RabbitMQ, the auth service, the takers' control exchange,
  Alertmanager and Prometheus; `store/`: likkerctl's own database (audit log, disk
  samples, the webhook's ledger).
- the base: `profile` (which servers), `paths`, `contract` (what likkerctl and the stack
  agree on), `errors` (the expected failures, mapped to exit codes and HTTP answers by the
  interfaces).

Nothing here imports typer, rich, textual or click.
"""
