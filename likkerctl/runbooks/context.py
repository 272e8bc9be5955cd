"""What a runbook step is given and what it returns; the contract for plugin steps too.

A step is an object with a `name`, a `description`, a `params` schema and
`run(ctx, params) -> StepResult`. Steps act through `ctx.perform(operation)` — the same
operations the CLI runs — so observe mode is the operation's dry run and every action lands
in the audit log under the alert's key.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from likkerctl.core import operations
from likkerctl.core.profile import Profile

# How a run was started: the webhook's three modes, and `manual` (the dashboard's `f`).
Mode = Literal["observe", "enforce", "approve", "manual"]
MODES: tuple[str, ...] = ("observe", "enforce", "approve")  # what `webhook serve --mode` takes
Status = Literal["ok", "skipped", "stop", "escalate", "failed"]

REQUIRED: Any = object()


@dataclass(frozen=True)
class Param:
    kind: type  # int, float, str, bool or list (of strings)
    default: Any = REQUIRED
    help: str = ""
    choices: tuple[str, ...] = ()  # a str parameter's allowed values, when limited


@dataclass
class StepResult:
    """`stop`: nothing (more) to do, later steps are skipped; `escalate`: a human is needed."""

    status: Status
    summary: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AlertInfo:
    name: str
    key: str  # fingerprint:startsAt, the audit log's `alert`
    fingerprint: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]


@dataclass
class RunContext:
    profile: Profile
    mode: Mode
    runbook: str
    alert: AlertInfo
    # Shared between the steps of one run (find-offenders leaves `offenders` for the others).
    # JSON-able: the webhook saves it with each step, so a restart after a crash can finish
    # the interrupted run's `always` steps with it (resume only the takers it paused).
    state: dict[str, Any] = field(default_factory=dict)
    sleep: Callable[[float], None] = time.sleep
    log: Callable[[str], None] = lambda _m: None
    # Approve and manual runs are planned first: every step as its dry run, shown to a human.
    planning: bool = False
    run_id: int | None = None  # the webhook's run (its ledger row); None from the dashboard
    decided_by: str | None = None  # who approved (approve mode) or confirmed (manual)
    # Called when `state` changed in a way a crash must not lose (a step is about to act).
    checkpoint: Callable[[], None] = lambda: None

    @property
    def dry_run(self) -> bool:
        return self.mode == "observe" or self.planning

    @property
    def tags(self) -> dict[str, Any]:
        """What every audit row of this run records about it (mode, run, approver)."""
        tags: dict[str, Any] = {"name": self.runbook, "mode": self.mode}
        if self.planning:
            tags["phase"] = "plan"
        if self.run_id is not None:
            tags["run"] = self.run_id
        if self.decided_by:
            tags["approved_by"] = self.decided_by
        return tags

    def perform(self, op: operations.Operation) -> operations.Performed:
        """Run `op` as the CLI would (a dry run in observe mode or while planning), audited
        under this alert."""
        return operations.perform(
            self.profile,
            op,
            dry_run=self.dry_run,
            confirm=None,
            alert=self.alert.key,
            runbook=self.tags,
        )

    @contextmanager
    def record(self, command: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """An audit row for a step that is not a CLI operation (yields its counts)."""
        from likkerctl.core.store import audit  # SQLAlchemy: only when a step records

        with audit.audited(
            self.profile.audit_url,
            profile=self.profile.name,
            command=command,
            params=params,
            dry_run=self.dry_run,
            alert=self.alert.key,
            runbook=self.tags,
        ) as action:
            yield action.counts

    def template_vars(self) -> dict[str, Any]:
        offenders = self.state.get("offenders", [])
        return {
            "actions_queue": self.profile.actions_queue,
            "dlq": self.profile.dlq,
            "profile": self.profile.name,
            "runbook": self.runbook,
            "mode": self.mode,
            "alertname": self.alert.name,
            "alert": self.alert.key,
            "fingerprint": self.alert.fingerprint,
            "labels": dict(self.alert.labels),
            "annotations": dict(self.alert.annotations),
            "bots": ", ".join(str(o["bot"]) for o in offenders if o.get("bot") is not None),
            "escalation": self.state.get("escalation", ""),
            "run": "" if self.run_id is None else str(self.run_id),
            "expires_at": self.state.get("expires_at", ""),
        }


class Step(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def description(self) -> str: ...

    @property
    def params(self) -> Mapping[str, Param]: ...

    def run(self, ctx: RunContext, params: dict[str, Any]) -> StepResult: ...


TEMPLATE_KEYS = [
    *("actions_queue", "dlq", "profile", "runbook", "mode", "alertname", "alert"),
    *("fingerprint", "labels", "annotations", "bots", "escalation", "run", "expires_at"),
]


class _Blank(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return ""


def render(text: str, variables: Mapping[str, Any]) -> str:
    """`{name}` and `{labels[x]}` filled in; a missing label is empty, an unknown name an error."""
    values = dict(variables)
    for key in ("labels", "annotations"):
        values[key] = _Blank(values.get(key) or {})
    try:
        return text.format_map(values)
    except KeyError as exc:
        raise ValueError(
            f"unknown placeholder {{{exc.args[0]}}} in {text!r}; known: {', '.join(TEMPLATE_KEYS)}"
        ) from None
    except (ValueError, IndexError, AttributeError, TypeError) as exc:
        # TypeError: a format spec on a label map, `{labels:d}`.
        raise ValueError(f"bad template {text!r}: {exc}") from None


def sample_vars() -> dict[str, Any]:
    """Values to check templates with when a runbook file is loaded."""
    return {k: "x" for k in TEMPLATE_KEYS} | {"labels": {}, "annotations": {}}
