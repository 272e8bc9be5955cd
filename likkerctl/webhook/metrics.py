"""The webhook's metrics (`GET /metrics`)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry = registry or CollectorRegistry()
        self.requests = Counter(
            "likkerctl_webhook_requests",
            "Requests to /alerts by answer",
            ["code"],
            registry=registry,
        )
        self.alerts = Counter(
            "likkerctl_webhook_alerts",
            "Alerts received, by status and what was done",
            ["status", "action"],
            registry=registry,
        )
        self.runs = Counter(
            "likkerctl_runbook_runs",
            "Runbook runs by outcome",
            ["runbook", "outcome"],
            registry=registry,
        )
        self.steps = Counter(
            "likkerctl_runbook_steps",
            "Runbook steps by outcome",
            ["step", "status"],
            registry=registry,
        )
        self.seconds = Histogram(
            "likkerctl_runbook_seconds",
            "From receiving an alert to its runbook's last step",
            ["runbook"],
            buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800),
            registry=registry,
        )
        self.running = Gauge(
            "likkerctl_runbooks_running", "Runbooks running now", registry=registry
        )
        self.pending = Gauge(
            "likkerctl_runbooks_pending",
            "Runs planned in approve mode, waiting for a decision",
            registry=registry,
        )
