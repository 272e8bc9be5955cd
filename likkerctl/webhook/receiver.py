"""The Alertmanager receiver: authenticate, bound, validate, record, then run the runbook.

Checks happen in the order that costs an attacker the least of our time: the bearer token
(before a byte of the body is read), the size (Content-Length, then while reading), the
payload. A valid notification is answered at once; runbooks run in worker threads (see
webhook.remediator), one per target at a time, and at most `max_runs_per_hour`. Every alert
is recorded in the ledger, whose unique (fingerprint:startsAt, status) makes a repeated
delivery a no-op.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from likkerctl.core.contract.http import (
    BEARER,
    add_schemas,
    bearer_token,
    create_base_app,
    error_response,
    errors,
    json_body,
)
from likkerctl.core.errors import (
    Conflict,
    Failed,
    InvalidInput,
    LikkerError,
    NotFound,
    Unreachable,
    first_line,
)
from likkerctl.runbooks.context import Mode
from likkerctl.webhook.payload import Notification, PayloadError, parse
from likkerctl.webhook.remediator import Remediator

DEFAULT_MAX_BODY = 1 << 20  # Alertmanager's notifications are a few KB per alert


@dataclass
class ReceiverSettings:
    token: str
    mode: Mode = "observe"
    max_body_bytes: int = DEFAULT_MAX_BODY
    workers: int = 4


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


_RECEIVED = {
    "type": "object",
    "required": ["received", "alerts"],
    "properties": {
        "received": {"type": "integer", "minimum": 1},
        "alerts": {"type": "array", "items": {"type": "object"}},
    },
}


def _notification_schemas() -> dict[str, dict[str, object]]:
    """Alertmanager's v4 payload as the validator reads it, for the OpenAPI components."""
    schema = Notification.model_json_schema(
        by_alias=True, ref_template="#/components/schemas/{model}"
    )
    defs = schema.pop("$defs", {})
    return {"AlertmanagerNotification": schema, **defs}


def create_app(settings: ReceiverSettings, remediator: Remediator) -> FastAPI:
    app = create_base_app(
        "likkerctl webhook",
        remediator.metrics.registry,
        health=lambda: {
            "mode": remediator.mode,
            "runbooks": sorted(remediator.runbooks.runbooks),
            "remediating": remediator.locks.held(),
            "pending": sorted(remediator.waiting),
        },
    )
    expected = settings.token.encode()
    counted = remediator.metrics.requests

    def answer(status: int, code: str, detail: str, **headers: str) -> JSONResponse:
        counted.labels(str(status)).inc()
        return error_response(status, code, detail, headers or None)

    add_schemas(app, _notification_schemas())

    @app.post(
        "/alerts",
        tags=["alertmanager"],
        operation_id="receive_alerts",
        response_class=JSONResponse,
        responses={
            200: {
                "description": "Recorded; each alert's runbook runs (or is skipped) in the "
                "background",
                "content": {"application/json": {"schema": _RECEIVED}},
            },
            **errors(
                400,
                401,
                404,
                409,
                413,
                503,
                s400="Not an Alertmanager v4 webhook payload (the detail names the field)",
                s401="The receiver's bearer token is required",
                s413=f"Body over the receiver's limit ({settings.max_body_bytes} bytes)",
                s503="Its ledger or a target is unavailable; Alertmanager retries",
            ),
        },
        openapi_extra={
            **BEARER,
            **json_body({"$ref": "#/components/schemas/AlertmanagerNotification"}),
        },
    )
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
