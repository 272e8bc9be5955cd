"""What `status` and the dashboard read, part by part, from live servers or a recording.

A *part* is one independent source — nodes, queues, forecast, takers, alerts, offenders,
bots, audit, approvals (the webhook's runs waiting for a decision) — so a slow or dead server
fails only its own part. `LiveReadings` asks the real
servers through the core's functions; `RecordedReadings` replays a recording made with
`likkerctl dashboard --record`, so the CLI and the dashboard can be fed the very same state
in tests and benchmarks. `collect_status` is the `likkerctl status --json` document.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Protocol, Self

from likkerctl.core import errors, status
from likkerctl.core.clients import alertmanager, auth, control, rabbit
from likkerctl.core.errors import Failed, LikkerError, NotConfigured, NotFound, first_line
from likkerctl.core.messages import fields, sampling
from likkerctl.core.profile import Profile

# Error kinds a recording can replay, by name.
KINDS: dict[str, type[LikkerError]] = {
    kind.__name__: kind
    for kind in (errors.Unreachable, errors.AuthRefused, errors.NotFound, errors.Failed)
}
# Replayed by its message, which says "not configured" (as the panel shows it).
KINDS["NotConfigured"] = Failed

PARTS = (
    *("nodes", "queues", "forecast", "takers", "alerts", "offenders", "bots", "audit"),
    "approvals",
)
# What a recording made before a part existed stands for: no runs waited for approval.
ABSENT: dict[str, Any] = {"approvals": []}


class Readings(Protocol):
    profile: Profile

    def fetch(self, part: str) -> Any: ...

    def now(self) -> float: ...


class LiveReadings:
    """The servers of a profile. Each fetch blocks: the dashboard calls it from a worker."""

    def __init__(
        self,
        profile: Profile,
        sample_size: int = 500,
        all_queues: bool = False,
        offenders_by: str = "actor",
        offenders_queue: str | None = None,
    ) -> None:
        self.profile = profile
        self.sample_size = sample_size
        self.all_queues = all_queues
        # What the offenders panel ranks, and in which queue: any field (header.task,
        # body.tenant, an alias); checked now, so a bad one fails before the screen opens.
        self.offenders_by = fields.parse_field(offenders_by, fields.aliases_of(profile.aliases))
        self.offenders_queue = offenders_queue or profile.actions_queue
        self.offenders_queue_given = offenders_queue is not None

    def now(self) -> float:
        return time.time()

    def fetch(self, part: str) -> Any:
        if part not in PARTS:
            raise ValueError(part)
        return getattr(self, f"_{part}")()

    def _nodes(self) -> list[dict[str, Any]]:
        return status.node_rows(self.profile)

    def _queues(self) -> list[dict[str, Any]]:
        return status.queue_rows(self.profile, self.all_queues)

    def _forecast(self) -> dict[str, Any]:
        from likkerctl.core.disk import sources  # numpy: only when a forecast is asked for

        return sources.forecast_all(self.profile).as_json()

    def _takers(self) -> list[dict[str, Any]]:
        p = self.profile
        if not rabbit.Management(p, timeout=3).exchange_exists(p.control_exchange):
            raise NotConfigured(f"no takers' control exchange {p.control_exchange!r}")
        return control.command(p, "status", timeout=1.0)

    def _alerts(self) -> dict[str, Any]:
        found = alertmanager.firing_alerts(self.profile)
        if found.get("error"):
            raise Failed(found["error"])
        return found

    def _offenders(self) -> dict[str, Any]:
        """A sample of the offenders queue: its top values of a field (actors by default)
        and delivery counts; read in place when the broker allows (see sampling)."""
        p, by = self.profile, self.offenders_by
        queue = self.offenders_queue
        try:
            depth = status.queue_depth(p, queue)
        except NotFound:
            if self.offenders_queue_given:
                raise
            # Not a Likker broker: watch the queue in most trouble instead.
            rows = status.by_trouble(status.queue_rows(p, self.all_queues))
            # The management API's counts lag a statistics interval; AMQP's do not.
            exact = rabbit.exact_counts(p, [r["name"] for r in rows])
            busy = [r for r in rows if exact.get(r["name"], (0, 0))[0] > 0]
            if not busy:
                raise NotConfigured(
                    f"no queue {queue!r}, and no other queue holds messages"
                ) from None
            queue = busy[0]["name"]
            depth = status.queue_depth(p, queue)
        taken = sampling.take(p, queue, self.sample_size) if depth else None
        msgs = taken.messages if taken else []
        rows = sampling.top(msgs, by, max(depth, len(msgs)), limit=10)
        if by.name != "actor":
            # The panel's rows are keyed by `actor`: the value, as shown.
            rows = [{**r, "actor": fields.display(r[by.name])} for r in rows]
        document = {
            "queue": queue,
            "sampled": len(msgs),
            "depth": depth,
            "actors": rows,
            "histogram": sampling.delivery_histogram(msgs),
        }
        if by.name != "actor":
            document["by"] = by.name
        if queue != self.offenders_queue:
            document["picked"] = "the queue in most trouble"
        if taken is not None:
            document["sampling"] = taken.mode
        return document

    def _bots(self) -> dict[str, Any]:
        if not self.profile.auth_url:
            raise NotConfigured("no auth_url in this profile")
        return {str(b["bot_id"]): b for b in auth.AuthAdmin(self.profile, timeout=3).bots()}

    def _audit(self) -> list[dict[str, Any]]:
        from likkerctl.core.store import audit  # SQLAlchemy: only when the audit log is read

        return audit.entries(self.profile.audit_url, limit=8)

    def _approvals(self) -> list[dict[str, Any]]:
        from likkerctl.core.store import approvals  # SQLAlchemy: only when it is read

        return approvals.waiting(self.profile.audit_url)


class RecordedReadings:
    """Replays a recording: each part's value or error, at the recording's clock."""

    def __init__(self, data: dict[str, Any], profile: Profile | None = None) -> None:
        self.data = data
        self.profile = profile or Profile(name=data.get("profile", "recorded"))

    @classmethod
    def load(cls, path: Path) -> Self:
        return cls(json.loads(path.read_text()))

    def now(self) -> float:
        return float(self.data["at"])

    def fetch(self, part: str) -> Any:
        if part not in self.data["parts"] and part in ABSENT:
            return ABSENT[part]
        got = self.data["parts"].get(part, {"error": "not recorded"})
        if "error" in got:
            # The recorded kind, so a replayed outage means what the live one meant.
            raise KINDS.get(got.get("kind", ""), Failed)(got["error"])
        return got["value"]


def record(readings: Readings, path: Path) -> dict[str, Any]:
    """Fetch every part once and write the recording (values and errors) to `path`."""
    parts: dict[str, Any] = {}
    for part in PARTS:
        try:
            parts[part] = {"value": readings.fetch(part)}
        except Exception as exc:  # a part that fails is recorded as failing
            parts[part] = {"error": first_line(exc), "kind": type(exc).__name__}
    data = {"at": readings.now(), "profile": readings.profile.name, "parts": parts}
    path.write_text(json.dumps(data, indent=1, default=str) + "\n")
    return data


def collect_status(readings: Readings) -> dict[str, Any]:
    """The broker's nodes and queues (which must answer), and the takers, forecast and alerts
    as far as they answer: what failed is said in its place."""
    profile = readings.profile
    nodes = readings.fetch("nodes")
    queues = readings.fetch("queues")
    # Readings recorded before clusters were shown lack these fields; same meaning.
    for n in nodes:
        n.setdefault("state", "running" if n.get("running") else "down")
    for q in queues:
        q.setdefault("replicas", None)
    try:
        fleet: dict[str, Any] = {"takers": readings.fetch("takers")}
    except LikkerError as exc:
        fleet = {"takers": [], "error": str(exc)}
    try:
        disk_forecast: dict[str, Any] = readings.fetch("forecast")
    except LikkerError as exc:
        disk_forecast = {"error": str(exc)}
    try:
        alerts: dict[str, Any] = readings.fetch("alerts")
    except LikkerError as exc:
        alerts = {"configured": True, "error": str(exc)}
    return {
        "profile": profile.name,
        "management_url": profile.mgmt_url,
        "nodes": nodes,
        "queues": queues,
        **fleet,
        "forecast": disk_forecast,
        "alertmanager": alerts,
    }
