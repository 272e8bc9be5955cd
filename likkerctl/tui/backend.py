"""Where the dashboard's figures come from, and where its actions go.

The figures are the core's readings (`likkerctl.core.readings`: the same parts `likkerctl
status` reads); the actions run through `operations.perform`, like the CLI's and the
runbooks'. `RecordedBackend` replays a recording (`likkerctl dashboard --record`) and its
recorded actions, so screens can be tested and benchmarked deterministically.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol

from likkerctl.core import operations
from likkerctl.core.errors import NotFound
from likkerctl.core.profile import Profile
from likkerctl.core.readings import PARTS, LiveReadings, RecordedReadings

__all__ = ["PARTS", "Backend", "LiveBackend", "OnProgress", "RecordedBackend"]

OnProgress = Callable[[int, int, float], None]


class Backend(Protocol):
    profile: Profile

    def fetch(self, part: str) -> Any: ...

    def now(self) -> float: ...

    def dry_run(self, op: operations.Operation) -> dict[str, Any]: ...

    def execute(self, op: operations.Operation, on_progress: OnProgress) -> dict[str, Any]: ...


class LiveBackend(LiveReadings):
    """The servers of a profile; actions through operations.perform (audited)."""

    def dry_run(self, op: operations.Operation) -> dict[str, Any]:
        return operations.perform(self.profile, op, dry_run=True).plan

    def execute(self, op: operations.Operation, on_progress: OnProgress) -> dict[str, Any]:
        def progress(p: Any) -> None:
            on_progress(p.scanned, p.total, p.rate)

        done = operations.perform(self.profile, op, dry_run=False, on_progress=progress)
        assert done.result is not None
        return done.result


class RecordedBackend(RecordedReadings):
    """A recording's parts, and its recorded actions.

    A recorded action's `progress` is reported and then the run waits (until `release`),
    so a screen can be captured mid-action.
    """

    def __init__(self, data: dict[str, Any], profile: Profile | None = None) -> None:
        super().__init__(data, profile)
        self.release = threading.Event()

    def _action(self, op: operations.Operation) -> dict[str, Any]:
        actions = self.data.get("actions", {})
        if op.command not in actions:
            raise NotFound(f"no recorded {op.command!r} action")
        return dict(actions[op.command])

    def dry_run(self, op: operations.Operation) -> dict[str, Any]:
        return dict(self._action(op)["plan"])

    def execute(self, op: operations.Operation, on_progress: OnProgress) -> dict[str, Any]:
        recorded = self._action(op)
        if "progress" in recorded:
            on_progress(*recorded["progress"])
            self.release.wait(timeout=10)  # a test captures the screen meanwhile
        return dict(recorded["result"])
