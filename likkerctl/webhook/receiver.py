"""The Alertmanager receiver: authenticate, bound, validate, record, then run the runbook.

Checks happen in the order that costs an attacker the least of our time: the bearer token
(before a byte of the body is read), the size (Content-Length, then while reading), the
payload. A valid notification is answered at once; runbooks run in worker threads, one per
target at a time, and at most `max_runs_per_hour`. Every alert is recorded in the ledger,
whose unique (fingerprint:startsAt, status) makes a repeated delivery a no-op.
"""

from __future__ import annotations

import hmac
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from likkerctl.core.contract.http import bearer_token, create_base_app, error_response
from likkerctl.core.errors import (
    Conflict,
    Failed,
    InvalidInput,
    LikkerError,
    NotFound,
    Unreachable,
    first_line,
)
from likkerctl.core.profile import Profile
from likkerctl.runbooks import engine
from likkerctl.runbooks.context import AlertInfo, Mode, RunContext, Step, render
from likkerctl.runbooks.spec import Runbook, RunbookSet
from likkerctl.webhook import ledger as ledger_mod
from likkerctl.webhook.limits import RateLimiter, TargetLocks
from likkerctl.webhook.payload import Alert, Notification, PayloadError, parse

log = logging.getLogger("likkerctl.webhook")

DEFAULT_MAX_BODY = 1 << 20  # Alertmanager's notifications are a few KB per alert


@dataclass
class ReceiverSettings:
    token: str
    mode: Mode = "observe"
    max_body_bytes: int = DEFAULT_MAX_BODY
    workers: int = 4


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


class Remediator:
    """Records alerts and runs their runbooks, one per target at a time, rate-limited."""

    def __init__(
        self,
        profile: Profile,
        runbooks: RunbookSet,
        steps: dict[str, Step],
        mode: Mode,
        metrics: Metrics,
        workers: int = 4,
    ) -> None:
        self.profile = profile
        self.runbooks = runbooks
        self.steps = steps
        self.mode = mode
        self.metrics = metrics
        self.ledger = ledger_mod.Ledger(profile.audit_url)
        self.locks = TargetLocks()
        self.limiter = RateLimiter(runbooks.max_runs_per_hour, 3600.0)
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="runbook")

    def receive(self, note: Notification) -> list[dict[str, Any]]:
        """Record each alert of `note`; queue the runbooks of new firings. Blocking (DB)."""
        answers = []
        now = datetime.now(UTC)
        for alert in note.alerts:
            runbook = (
                self.runbooks.match(alert.name, alert.annotations)
                if alert.status == "firing"
                else None
            )
            if alert.status == "resolved":
                action = "recorded"
            else:
                action = ledger_mod.QUEUED if runbook else "no runbook"
            row_id = self.ledger.claim(
                alert,
                note.group_key,
                runbook.name if runbook else None,
                self.mode if runbook else None,
                action,
                now,
            )
            if row_id is None:
                action = "duplicate"
            elif runbook is not None:
                self.pool.submit(self._run, row_id, alert, runbook, now)
            self.metrics.alerts.labels(alert.status, action).inc()
            log.info("alert %s %s (%s): %s", alert.name, alert.status, alert.key, action)
            answers.append(
                {
                    "alert": alert.key,
                    "alertname": alert.name,
                    "status": alert.status,
                    "runbook": runbook.name if runbook else None,
                    "action": action,
                }
            )
        return answers

    def _run(self, row_id: int, alert: Alert, runbook: Runbook, received: datetime) -> None:
        try:
            self._run_locked(row_id, alert, runbook, received)
        except Exception as exc:  # never lose the worker thread, always close the row
            log.exception("runbook %s for %s failed", runbook.name, alert.key)
            self.ledger.finish(row_id, "failed", {"error": f"{type(exc).__name__}: {exc}"})
            self.metrics.runs.labels(runbook.name, "failed").inc()

    def _run_locked(self, row_id: int, alert: Alert, runbook: Runbook, received: datetime) -> None:
        info = AlertInfo(alert.name, alert.key, alert.fingerprint, alert.labels, alert.annotations)
        ctx = RunContext(
            self.profile, self.mode, runbook.name, info, log=lambda m: log.info("%s", m)
        )
        target = render(runbook.target, ctx.template_vars())
        holder = self.locks.try_take(target, alert.key)
        if holder is not None:
            log.warning("%s: %s is being remediated for %s; not run", alert.key, target, holder)
            self.ledger.finish(row_id, "busy", {"target": target, "held_by": holder})
            self.metrics.runs.labels(runbook.name, "busy").inc()
            return
        try:
            if not self.limiter.try_acquire():
                retry = self.limiter.retry_in()
                log.warning("%s: rate limited (next run allowed in %.0fs)", alert.key, retry)
                self.ledger.finish(
                    row_id,
                    "rate limited",
                    {"max_runs_per_hour": self.limiter.limit, "retry_in_s": round(retry)},
                )
                self.metrics.runs.labels(runbook.name, "rate limited").inc()
                return
            self.ledger.finish(row_id, ledger_mod.RUNNING, {"target": target})
            self.metrics.running.inc()
            try:
                report = engine.run(runbook, ctx, self.steps)
            finally:
                self.metrics.running.dec()
            for s in report.steps:
                self.metrics.steps.labels(s.step, s.status).inc()
            self.metrics.runs.labels(runbook.name, report.outcome).inc()
            self.metrics.seconds.labels(runbook.name).observe(
                (datetime.now(UTC) - received).total_seconds()
            )
            self.ledger.finish(row_id, report.outcome, {"target": target, **report.as_json()})
        finally:
            self.locks.release(target, alert.key)

    def shutdown(self) -> None:
        self.pool.shutdown(wait=True)


# How the core's errors answer Alertmanager. It retries on 5xx, so what may pass by itself
# (a server or database not answering) is a 503 with Retry-After.
HTTP_ANSWERS: tuple[tuple[type[LikkerError], int, str], ...] = (
    (InvalidInput, 400, "invalid"),
    (NotFound, 404, "not-found"),
    (Conflict, 409, "conflict"),
    (Unreachable, 503, "unavailable"),
    (Failed, 503, "unavailable"),
)


def http_answer(exc: LikkerError) -> tuple[int, str]:
    return next(((s, c) for kind, s, c in HTTP_ANSWERS if isinstance(exc, kind)), (500, "error"))


def create_app(settings: ReceiverSettings, remediator: Remediator) -> FastAPI:
    app = create_base_app(
        "likkerctl webhook",
        remediator.metrics.registry,
        health=lambda: {
            "mode": remediator.mode,
            "runbooks": sorted(remediator.runbooks.runbooks),
            "remediating": remediator.locks.held(),
        },
    )
    expected = settings.token.encode()
    counted = remediator.metrics.requests

    def answer(status: int, code: str, detail: str, **headers: str) -> JSONResponse:
        counted.labels(str(status)).inc()
        return error_response(status, code, detail, headers or None)

    @app.post("/alerts", tags=["alertmanager"])
    async def alerts(request: Request) -> JSONResponse:
        supplied = (bearer_token(request) or "").encode()
        if not hmac.compare_digest(supplied, expected):
            return answer(
                401,
                "unauthenticated",
                "a valid bearer token is required (Alertmanager http_config.authorization)",
                **{"WWW-Authenticate": "Bearer"},
            )
        limit = settings.max_body_bytes
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            return answer(413, "too-large", f"body over {limit} bytes", Connection="close")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                return answer(413, "too-large", f"body over {limit} bytes", Connection="close")
        try:
            note = parse(bytes(body))
        except PayloadError as exc:
            return answer(400, "invalid", str(exc))
        try:
            answers = await run_in_threadpool(remediator.receive, note)
        except LikkerError as exc:  # e.g. the ledger's database is unusable
            status, code = http_answer(exc)
            retry = {"Retry-After": "30"} if status == 503 else {}
            return answer(status, code, first_line(exc), **retry)
        counted.labels("200").inc()
        return JSONResponse({"received": len(answers), "alerts": answers})

    return app
