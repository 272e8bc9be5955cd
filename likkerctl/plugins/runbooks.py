"""The runbooks the webhook and the dashboard run: a runbook file checked against the
built-in steps and the plugins' steps (`likkerctl webhook serve|check`, `stack up
--runbooks`, `dashboard --runbooks`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from likkerctl.plugins.registry import load_steps
from likkerctl.runbooks import spec
from likkerctl.runbooks.steps import builtin


def load_runbooks(path: Path | None) -> tuple[spec.RunbookSet, dict[str, Any], list[Any]]:
    """The runbook file at `path` (or the built-in one) with the built-in and plugin steps;
    a step whose plugin failed to load is named with the plugin's error."""
    steps, infos = load_steps(builtin())
    try:
        return spec.load(path, steps), steps, infos
    except spec.RunbookError as exc:
        broken = [i for i in infos if i.status != "ok" and f"step {i.name!r}" in str(exc)]
        if broken:
            raise spec.RunbookError(
                f"{exc}; the plugin providing {broken[0].name!r} ({broken[0].source}) failed "
                f"to load: {broken[0].error}"
            ) from exc
        raise
