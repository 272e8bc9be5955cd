"""Plugins, two kinds.

- Python packages declaring entry points: group `likkerctl.commands` (a `typer.Typer` or a
  function: becomes `likkerctl NAME`) and group `likkerctl.steps` (a runbook step class).
- Executables named `likkerctl-NAME` in the profile's plugins dir or on PATH: run as
  `likkerctl NAME ARGS...` with the profile's context as JSON on stdin (kubectl's convention).

A plugin that fails to load or run is reported; it never takes the tool or the webhook down.
"""
