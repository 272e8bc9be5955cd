"""The public API gateway: authenticate, validate, enqueue likes with confirms (DESIGN §9).

A like is answered 202 only after the broker confirmed the message; when the broker is down
or blocking publishers the answer is 503 with Retry-After, so no accepted like is ever lost.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CollectorRegistry, Counter, Gauge
from starlette.routing import Route

from likkerctl.core import contract
from likkerctl.core.contract.http import (
    BEARER,
    ERROR_CONTENT,
    RETRY_AFTER_HEADER,
    ApiError,
    ErrorBody,
    bearer_token,
    create_base_app,
    errors,
    json_body,
)
from stack.gateway.principals import AuthUnavailable, BlockEventListener, Principal, PrincipalCache
from stack.gateway.publisher import BrokerUnavailable, ConfirmPublisher

MAX_BODY_BYTES = 64 * 1024


@dataclass
class GatewaySettings:
    amqp_url: str
    auth_url: str
    likes_url: str
    confirm_timeout_s: float = 5.0
    token_cache_seconds: float = 30.0
    retry_after_s: int = 5


def _unavailable(detail: str, retry_after: int) -> ApiError:
    return ApiError(503, "unavailable", detail, {"Retry-After": str(retry_after)})


async def _json_object(request: Request, *, required: bool) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise ApiError(413, "too-large", f"body over {MAX_BODY_BYTES} bytes")
    if not raw.strip():
        if required:
            raise ApiError(400, "invalid", "a JSON object body is required")
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid", f"malformed JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ApiError(400, "invalid", "body must be a JSON object")
    return data


def _post_id(text: str) -> int:
    # At most 16 digits before int(): a huge path costs nothing to refuse.
    if not _POST_ID.fullmatch(text) or not 1 <= int(text) <= contract.ID_MAX:
        raise ApiError(400, "invalid", f"post_id must be an integer from 1 to {contract.ID_MAX}")
    return int(text)


_POST_ID = re.compile(r"[0-9]{1,16}")
# The canonical UUID spelling only (what the document promises), any case.
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_UUID_PATTERN = "^" + _UUID.pattern + "$"
_LIKE_ERRORS = (
    (400, "Malformed body, post id (1 to 2**53 - 1) or Idempotency-Key (a UUID)"),
    (401, "Missing or unknown token"),
    (403, "Blocked bot"),
    (404, "No such post"),
    (413, "Body over 64 KiB"),
    (503, "Broker, auth or likes service unavailable, or the broker blocking publishers"),
)
_LIKE_OPENAPI: dict[str, Any] = {
    "post": {
        "summary": "Like a post",
        "operationId": "like_post",
        "description": "202 only once the broker confirmed the like; an Idempotency-Key "
        "(UUID) becomes the request id, so a retried like is one like. A like has no fields: "
        "the body may be empty or a JSON object, which is ignored.",
        "security": BEARER["security"],
        "parameters": [
            {
                "name": "post_id",
                "in": "path",
                "required": True,
                "schema": {"type": "integer", "minimum": 1, "maximum": contract.ID_MAX},
            },
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "format": "uuid", "pattern": _UUID_PATTERN},
            },
        ],
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
        "responses": {
            "202": {
                "description": "Accepted: durable in the broker",
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["request_id"],
                            "properties": {"request_id": {"type": "string", "format": "uuid"}},
                        }
                    }
                },
            },
            **{
                str(status): {
                    "description": why,
                    "content": ERROR_CONTENT,
                    **({"headers": RETRY_AFTER_HEADER} if status == 503 else {}),
                }
                for status, why in _LIKE_ERRORS
            },
        },
    }
}
_NEW_POST = {
    "type": "object",
    "required": ["text"],
    "properties": {"text": {"type": "string", "minLength": 1, "maxLength": 5000}},
}
_POST_MADE = {
    "type": "object",
    "required": ["post_id", "author_user_id"],
    "properties": {"post_id": {"type": "integer"}, "author_user_id": {"type": "integer"}},
}


def _document_like_route(app: FastAPI) -> None:
    """Add the like route, a plain Starlette route, to FastAPI's OpenAPI document."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            schema["paths"]["/v1/posts/{post_id}/likes"] = _LIKE_OPENAPI
            schema["components"]["schemas"]["ErrorBody"] = ErrorBody.model_json_schema()
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(settings: GatewaySettings, *, publisher: ConfirmPublisher | None = None) -> FastAPI:
    registry = CollectorRegistry()
    responses = Counter(
        "likker_gateway_responses", "Gateway answers", ["route", "status"], registry=registry
    )
    broker_state = Gauge(
        "likker_gateway_broker_up", "1 if the gateway can publish to the broker", registry=registry
    )
    publisher = publisher or ConfirmPublisher(settings.amqp_url)
    broker_state.set_function(lambda: float(publisher.connected and not publisher.blocked))
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        auth = httpx.AsyncClient(base_url=settings.auth_url, timeout=5.0)
        likes = httpx.AsyncClient(base_url=settings.likes_url, timeout=5.0)
        principals = PrincipalCache(auth, settings.token_cache_seconds)
        listener = BlockEventListener(settings.amqp_url, principals)
        state.update(auth=auth, likes=likes, principals=principals, known_posts=set())
        publisher.start(asyncio.get_running_loop())
        listener.start()
        yield
        listener.stop()
        publisher.stop()
        await auth.aclose()
        await likes.aclose()

    def health() -> dict[str, Any]:
        return {
            "broker": "blocked"
            if publisher.blocked
            else ("connected" if publisher.connected else "disconnected"),
            "in_flight": publisher.in_flight,
        }

    app = create_base_app("likker-gateway", registry, health)
    app.router.lifespan_context = lifespan

    async def authenticate(request: Request) -> Principal:
        token = bearer_token(request)
        if token is None:
            raise ApiError(401, "unauthenticated", "missing bearer token")
        try:
            principal = await state["principals"].resolve(token)
        except AuthUnavailable as exc:
            raise _unavailable(f"auth service unavailable: {exc}", settings.retry_after_s) from exc
        if principal is None:
            raise ApiError(401, "unauthenticated", "unknown token")
        if principal.blocked:
            raise ApiError(
                403, "bot-blocked", f"bot {principal.bot_id} is blocked: {principal.blocked_reason}"
            )
        return principal

    async def ensure_post(post_id: int) -> None:
        known: set[int] = state["known_posts"]
        if post_id in known:
            return
        try:
            resp = await state["likes"].get(f"/v1/posts/{post_id}")
        except httpx.HTTPError as exc:
            raise _unavailable(f"likes service unavailable: {exc}", settings.retry_after_s) from exc
        if resp.status_code == 404:
            raise ApiError(404, "not-found", f"no post {post_id}")
        if resp.status_code != 200:
            raise _unavailable(f"likes service answered {resp.status_code}", settings.retry_after_s)
        known.add(post_id)

    @app.post(
        "/v1/posts",
        status_code=201,
        operation_id="create_post",
        response_class=JSONResponse,
        responses={
            201: {
                "description": "The post",
                "content": {"application/json": {"schema": _POST_MADE}},
                "links": {
                    "LikePost": {
                        "operationId": "like_post",
                        "parameters": {"post_id": "$response.body#/post_id"},
                    }
                },
            },
            **errors(400, 401, 403, 413, 503),
        },
        openapi_extra={**BEARER, **json_body(_NEW_POST)},
    )
    async def create_post(request: Request) -> JSONResponse:
        principal = await authenticate(request)
        body = await _json_object(request, required=True)
        text = body.get("text")
        if not isinstance(text, str) or not 1 <= len(text) <= 5000:
            raise ApiError(400, "invalid", "text must be a string of 1 to 5000 characters")
        try:
            resp = await state["likes"].post(
                "/v1/posts", json={"author_user_id": principal.user_id, "text": text}
            )
        except httpx.HTTPError as exc:
            raise _unavailable(f"likes service unavailable: {exc}", settings.retry_after_s) from exc
        if resp.status_code != 201:
            raise _unavailable(f"likes service answered {resp.status_code}", settings.retry_after_s)
        post = resp.json()
        state["known_posts"].add(post["post_id"])
        responses.labels("posts", "201").inc()
        return JSONResponse(post, status_code=201)

    # The hot path is a plain Starlette route: FastAPI's per-request parameter handling cost
    # a tenth of the gateway's CPU here (~33 us of ~350 us a like). Documented in
    # the OpenAPI document by hand (_LIKE_OPENAPI).
    accepted = responses.labels("likes", "202")

    async def like(request: Request) -> Response:
        try:
            return await _like(request, _post_id(request.path_params["post_id"]))
        except ApiError as exc:
            responses.labels("likes", str(exc.status)).inc()
            raise

    async def _like(request: Request, post_id: int) -> Response:
        principal = await authenticate(request)
        await _json_object(request, required=False)  # a like has no fields, but junk is refused
        request_id = request.headers.get("idempotency-key")
        if request_id is not None:
            if not _UUID.fullmatch(request_id):
                raise ApiError(400, "invalid", "Idempotency-Key must be a UUID")
            request_id = str(uuid.UUID(request_id))
        await ensure_post(post_id)
        message = contract.new_like(
            post_id, contract.Actor(principal.user_id, principal.bot_id), request_id
        )
        try:
            confirm = publisher.publish(
                contract.ACTIONS_EXCHANGE,
                contract.ACTIONS_ROUTING_KEY,
                message.body(),
                message.properties(),
            )
            await asyncio.wait_for(confirm, settings.confirm_timeout_s)
        except BrokerUnavailable as exc:
            raise _unavailable(f"broker: {exc}", settings.retry_after_s) from exc
        except TimeoutError as exc:
            raise _unavailable(
                f"broker did not confirm within {settings.confirm_timeout_s:g}s",
                settings.retry_after_s,
            ) from exc
        accepted.inc()
        # A request id is a UUID: nothing in it needs escaping.
        body = b'{"request_id":"%s"}' % message.request_id.encode()
        return Response(body, status_code=202, media_type="application/json")

    app.router.routes.append(Route("/v1/posts/{post_id}/likes", like, methods=["POST"]))
    _document_like_route(app)
    return app
