"""`likkerctl webhook serve`: the Alertmanager receiver that runs runbooks (likkerctl.runbooks).

`payload` validates Alertmanager's v4 payload, `receiver` is the HTTP app (its answers for
the core's errors), `remediator` runs the runbooks (observe, enforce, approve), `ledger`
records each alert once and each run's progress, `recovery` finishes what a crash
interrupted, `limits` the rate limit and per-target locks.
"""
