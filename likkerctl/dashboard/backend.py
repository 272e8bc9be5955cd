"""Where the dashboard's figures come from, and where its actions go.

`LiveBackend` asks the real servers through the same functions as the CLI commands (status
rows, forecast, sampling, takers, bots, audit) and runs actions through
`operations.perform`. `RecordedBackend` replays a recording (`likkerctl dashboard --record`)
so screens can be tested and benchmarked deterministically.

A *part* is one independent source with its own worker in the app, so a slow or dead
server only stales its own panels: nodes, queues, forecast, takers, alerts, offenders,
bots, audit.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from likkerctl import operations
from likkerctl.errors import CliError
from likkerctl.profile import Profile

PARTS = ("nodes", "queues", "forecast", "takers", "alerts", "offenders", "bots", "audit")
OnProgress = Callable[[int, int, float], None]


class Backend(Protocol):
    profile: Profile

    def fetch(self, part: str) -> Any: ...

    def now(self) -> float: ...

    def dry_run(self, op: operations.Operation) -> dict[str, Any]: ...

    def execute(self, op: operations.Operation, on_progress: OnProgress) -> dict[str, Any]: ...


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, CliError):
        return str(exc).splitlines()[0]
    return f"{type(exc).__name__}: {exc}"


class LiveBackend:
    """The servers of a profile. Each fetch is blocking: the app calls it from a worker."""

    def __init__(self, profile: Profile, sample_size: int = 500) -> None:
        self.profile = profile
        self.sample_size = sample_size

    def now(self) -> float:
        return time.time()

    def fetch(self, part: str) -> Any:
        return getattr(self, f"_{part}")()

    def _nodes(self) -> list[dict[str, Any]]:
        from likkerctl import rabbit
        from likkerctl.ops_cli import node_row

        return [node_row(n) for n in rabbit.Management(self.profile, timeout=3).nodes()]

    def _queues(self) -> list[dict[str, Any]]:
        from likkerctl.ops_cli import queue_rows

        return queue_rows(self.profile)

    def _forecast(self) -> dict[str, Any]:
        from likkerctl import disk

        return disk.forecast_all(self.profile).as_json()

    def _takers(self) -> list[dict[str, Any]]:
        from likkerctl import takers

        return takers.command(self.profile, "status", timeout=1.0)

    def _alerts(self) -> dict[str, Any]:
        from likkerctl.ops_cli import firing_alerts

        found = firing_alerts(self.profile)
        if found.get("error"):
            raise CliError(found["error"])
        return found

    def _offenders(self) -> dict[str, Any]:
        """A sample of the actions queue: top actors, delivery counts (sampling redelivers)."""
        from likkerctl import rabbit, sample

        p = self.profile
        depth = int(rabbit.Management(p, timeout=3).queue(p.actions_queue).get("messages", 0))
        msgs = sample.sample(p, p.actions_queue, self.sample_size) if depth else []
        return {
            "queue": p.actions_queue,
            "sampled": len(msgs),
            "depth": depth,
            "actors": sample.top(msgs, "actor", depth, limit=10),
            "histogram": sample.delivery_histogram(msgs),
        }

    def _bots(self) -> dict[str, Any]:
        from likkerctl import bots

        return {str(b["bot_id"]): b for b in bots.AuthAdmin(self.profile, timeout=3).bots()}

    def _audit(self) -> list[dict[str, Any]]:
        from likkerctl import audit

        return audit.entries(self.profile.audit_url, limit=8)

    def dry_run(self, op: operations.Operation) -> dict[str, Any]:
        return operations.perform(self.profile, op, dry_run=True).plan

    def execute(self, op: operations.Operation, on_progress: OnProgress) -> dict[str, Any]:
        def progress(p: Any) -> None:
            on_progress(p.scanned, p.total, p.rate)

        done = operations.perform(self.profile, op, dry_run=False, on_progress=progress)
        assert done.result is not None
        return done.result


class RecordedBackend:
    """Replays a recording: each part's value or error, a fixed clock, recorded actions.

    A recorded action's `progress` is reported and then the run waits (until `release`),
    so a screen can be captured mid-action.
    """

    def __init__(self, data: dict[str, Any], profile: Profile | None = None) -> None:
        self.data = data
        self.profile = profile or Profile(name=data.get("profile", "recorded"))
        self.release = threading.Event()

    @classmethod
    def load(cls, path: Path) -> RecordedBackend:
        return cls(json.loads(path.read_text()))

    def now(self) -> float:
        return float(self.data["at"])

    def fetch(self, part: str) -> Any:
        got = self.data["parts"].get(part, {"error": "not recorded"})
        if "error" in got:
            raise CliError(got["error"])
        return got["value"]

    def _action(self, op: operations.Operation) -> dict[str, Any]:
        actions = self.data.get("actions", {})
        if op.command not in actions:
            raise CliError(f"no recorded {op.command!r} action")
        return dict(actions[op.command])

    def dry_run(self, op: operations.Operation) -> dict[str, Any]:
        return dict(self._action(op)["plan"])

    def execute(self, op: operations.Operation, on_progress: OnProgress) -> dict[str, Any]:
        recorded = self._action(op)
        if "progress" in recorded:
            on_progress(*recorded["progress"])
            self.release.wait(timeout=10)  # a test captures the screen meanwhile
        return dict(recorded["result"])


def record(backend: Backend, path: Path) -> dict[str, Any]:
    """Fetch every part once and write the recording (values and errors) to `path`."""
    parts: dict[str, Any] = {}
    for part in PARTS:
        try:
            parts[part] = {"value": backend.fetch(part)}
        except Exception as exc:  # a part that fails is recorded as failing
            parts[part] = {"error": describe_error(exc)}
    data = {"at": backend.now(), "profile": backend.profile.name, "parts": parts}
    path.write_text(json.dumps(data, indent=1, default=str) + "\n")
    return data
