"""Runbook files: TOML, checked whole when loaded, so a mistake is found at start, not at 3 am.

    mode = "observe"                  # optional (observe, enforce, approve); `--mode` wins
    max_runs_per_hour = 6             # runbook runs, all alerts together
    approve_timeout_s = 900           # approve mode: no decision by then, nothing is done

    [runbooks.disk-full]
    alerts = ["LikkerBrokerDiskFullWithinOneHour"]   # or an alert's `runbook` annotation
    target = "{actions_queue}"        # one remediation per target at a time

    [[runbooks.disk-full.steps]]
    step = "find-offenders"           # a built-in or plugin step
    when = "ok"                       # ok (default), escalated (after a failure), always,
                                      # or pending (approve mode: tell a human it waits)
    max_actors = 3                    # the step's own parameters

See docs/WEBHOOK.md for every step and parameter; `likkerctl webhook check` prints the result.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from likkerctl.core.errors import InvalidInput
from likkerctl.runbooks.context import MODES, REQUIRED, Param, Step, render, sample_vars

WHEN = ("ok", "escalated", "always", "pending")
TOP_KEYS = {"mode", "max_runs_per_hour", "approve_timeout_s", "runbooks"}
RUNBOOK_KEYS = {"description", "alerts", "target", "approve_timeout_s", "steps"}
STEP_KEYS = {"step", "when"}


class RunbookError(InvalidInput):
    """A runbook file that cannot be run as written; the message names the place."""


@dataclass(frozen=True)
class StepSpec:
    step: str
    when: str
    params: dict[str, Any]


@dataclass(frozen=True)
class Runbook:
    name: str
    description: str
    alerts: tuple[str, ...]
    target: str
    steps: tuple[StepSpec, ...]
    # Approve mode: how long a planned run waits for `webhook approve|reject` (its own, or
    # the file's); then nothing is done and it escalates.
    approve_timeout_s: float | None = None


@dataclass(frozen=True)
class RunbookSet:
    source: str
    mode: str | None
    max_runs_per_hour: int
    runbooks: dict[str, Runbook] = field(default_factory=dict)

    def require_approve_timeouts(self, why: str) -> None:
        """Approve mode chosen by `why` (a flag): every runbook needs its timeout."""
        for r in self.runbooks.values():
            if r.approve_timeout_s is None:
                raise RunbookError(
                    f"{self.source}: runbooks.{r.name}: {why} needs approve_timeout_s "
                    "(seconds to wait for a decision), in the runbook or at the top of the file"
                )

    def match(self, alertname: str, annotations: Mapping[str, str]) -> Runbook | None:
        """The runbook named by the alert's `runbook` annotation, else one listing its name."""
        named = annotations.get("runbook")
        if named and named in self.runbooks:
            return self.runbooks[named]
        return next((r for r in self.runbooks.values() if alertname in r.alerts), None)

    def as_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "mode": self.mode,
            "max_runs_per_hour": self.max_runs_per_hour,
            "runbooks": {
                name: {
                    "description": r.description,
                    "alerts": list(r.alerts),
                    "target": r.target,
                    "approve_timeout_s": r.approve_timeout_s,
                    "steps": [{"step": s.step, "when": s.when, **s.params} for s in r.steps],
                }
                for name, r in self.runbooks.items()
            },
        }


DEFAULT_FILE = "default.toml"


def default_text() -> str:
    return resources.files("likkerctl.runbooks").joinpath(DEFAULT_FILE).read_text()


def load(path: Path | None, steps: Mapping[str, Step]) -> RunbookSet:
    """The runbooks in `path` (the built-in default when None), checked against `steps`."""
    if path is None:
        return parse(default_text(), "built-in default", steps)
    try:
        text = path.read_text()
    except OSError as exc:
        raise RunbookError(f"{path}: cannot read: {exc.strerror}") from exc
    return parse(text, str(path), steps)


def _check_value(where: str, name: str, param: Param, value: Any) -> Any:
    kind = param.kind
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is list:
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
        raise RunbookError(f"{where}: {name} must be a list of strings")
    if kind is int and isinstance(value, bool):
        raise RunbookError(f"{where}: {name} must be an integer, not {value!r}")
    if not isinstance(value, kind):
        raise RunbookError(f"{where}: {name} must be {kind.__name__}, not {value!r}")
    if param.choices and value not in param.choices:
        raise RunbookError(
            f"{where}: {name} must be one of {', '.join(param.choices)}, not {value!r}"
        )
    if isinstance(value, str):
        try:
            render(value, sample_vars())
        except ValueError as exc:
            raise RunbookError(f"{where}: {name}: {exc}") from None
    return value


def _timeout(where: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise RunbookError(f"{where}: approve_timeout_s must be a number of seconds > 0")
    return float(value)


def step_spec(where: str, raw: Any, steps: Mapping[str, Step]) -> StepSpec:
    """One step table checked against `steps`, its parameters' defaults filled in."""
    if not isinstance(raw, dict):
        raise RunbookError(f"{where}: must be a table")
    name = raw.get("step")
    if not isinstance(name, str) or not name:
        raise RunbookError(f"{where}: `step` is required (one of {', '.join(sorted(steps))})")
    impl = steps.get(name)
    if impl is None:
        raise RunbookError(f"{where}: unknown step {name!r}; known: {', '.join(sorted(steps))}")
    when = raw.get("when", "ok")
    if when not in WHEN:
        raise RunbookError(f"{where}: when must be one of {', '.join(WHEN)}, not {when!r}")
    if name == "purge" and "archive" in raw:
        raise RunbookError(
            f"{where}: a runbook never purges without an archive; purge steps always archive "
            "to the state dir (remove `archive`)"
        )
    params: dict[str, Any] = {}
    for key, value in raw.items():
        if key in STEP_KEYS:
            continue
        if key not in impl.params:
            known = ", ".join(sorted(impl.params)) or "none"
            raise RunbookError(f"{where}: step {name!r} has no parameter {key!r}; known: {known}")
        params[key] = _check_value(where, key, impl.params[key], value)
    for key, param in impl.params.items():
        if key not in params:
            if param.default is REQUIRED:
                raise RunbookError(f"{where}: step {name!r} needs {key!r}: {param.help}")
            params[key] = param.default
    return StepSpec(name, when, params)


def parse(text: str, source: str, steps: Mapping[str, Step]) -> RunbookSet:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RunbookError(f"{source}: not valid TOML: {exc}") from exc
    unknown = set(data) - TOP_KEYS
    if unknown:
        raise RunbookError(f"{source}: unknown key(s) {', '.join(sorted(unknown))}")
    mode = data.get("mode")
    if mode is not None and mode not in MODES:
        raise RunbookError(f"{source}: mode must be one of {', '.join(MODES)}, not {mode!r}")
    default_timeout = _timeout(source, data.get("approve_timeout_s"))
    rate = data.get("max_runs_per_hour", 6)
    if not isinstance(rate, int) or isinstance(rate, bool) or rate < 0:
        raise RunbookError(f"{source}: max_runs_per_hour must be an integer >= 0")
    tables = data.get("runbooks", {})
    if not isinstance(tables, dict) or not tables:
        raise RunbookError(f"{source}: no [runbooks.NAME] table")
    runbooks: dict[str, Runbook] = {}
    claimed: dict[str, str] = {}
    for name, table in tables.items():
        where = f"{source}: runbooks.{name}"
        if not isinstance(table, dict):
            raise RunbookError(f"{where}: must be a table")
        bad = set(table) - RUNBOOK_KEYS
        if bad:
            raise RunbookError(
                f"{where}: unknown key(s) {', '.join(sorted(bad))}; "
                f"known: {', '.join(sorted(RUNBOOK_KEYS))}"
            )
        alerts = table.get("alerts", [])
        if not isinstance(alerts, list) or not all(isinstance(a, str) for a in alerts):
            raise RunbookError(f"{where}: alerts must be a list of alert names")
        for alert in alerts:
            if alert in claimed:
                raise RunbookError(
                    f"{where}: alert {alert!r} is already handled by {claimed[alert]}"
                )
            claimed[alert] = name
        target = table.get("target", "{actions_queue}")
        description = table.get("description", "")
        for key, value in (("target", target), ("description", description)):
            if not isinstance(value, str):
                raise RunbookError(f"{where}: {key} must be a string")
        _check_value(where, "target", Param(str), target)
        raw_steps = table.get("steps")
        if not isinstance(raw_steps, list) or not raw_steps:
            raise RunbookError(f"{where}: needs at least one [[runbooks.{name}.steps]]")
        specs = tuple(
            step_spec(f"{where}.steps[{i}]", raw, steps) for i, raw in enumerate(raw_steps)
        )
        timeout = _timeout(where, table.get("approve_timeout_s")) or default_timeout
        if mode == "approve" and timeout is None:
            raise RunbookError(
                f'{where}: mode = "approve" needs approve_timeout_s (seconds to wait for a '
                "decision), in the runbook or at the top of the file"
            )
        runbooks[name] = Runbook(name, description, tuple(alerts), target, specs, timeout)
    return RunbookSet(source, mode, rate, runbooks)
