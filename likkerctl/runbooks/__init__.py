"""Runbooks: what the webhook does about an alert, as data (TOML), run step by step.

`spec` reads and checks the file, `steps` holds the built-in steps (each one the same code as
the CLI command of its name), `offenders` decides which actors to act on, `engine` runs a
runbook for one alert and records every step in the audit log.
"""
