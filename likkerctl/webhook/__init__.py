"""`likkerctl webhook serve`: the Alertmanager receiver that runs runbooks (likkerctl.runbooks).

`payload` validates Alertmanager's v4 payload, `receiver` is the HTTP app (its answers for
the core's errors), `ledger` records each alert once, `limits` the rate limit and per-target
locks, `loading` the runbooks with their plugin steps.
"""
