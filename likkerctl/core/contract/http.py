"""What every HTTP service of ours shares — the stack's and likkerctl's webhook: JSON
errors, /healthz, /metrics, honest OpenAPI documents, and serving.

Errors are always `{"error": "<code>", "detail": "<one line>"}`; a caller's mistake is a 4xx
(never FastAPI's default 422 shape, never a 5xx). Every 503 carries `Retry-After`; every 405
carries `Allow` (all the methods of that path, not just one route's).

The OpenAPI documents are tested by schemathesis against the running services
(tests/stack/test_contract_fuzzing.py): each operation declares its body, every status it
answers (`errors(...)`) and whether it needs a bearer token (`BEARER`).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

import uvicorn
from fastapi import FastAPI, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import BaseModel, ConfigDict
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from likkerctl.core.contract import ID_MAX

log = logging.getLogger("likker.http")

# Ids are positive JSON-safe integers (the contract's ID_MAX, 2**53 - 1): a larger one is the
# caller's mistake (400), never an overflow in the database driver (500).
Id = Annotated[int, Path(ge=1, le=ID_MAX)]
# What a 503 tells the caller when nothing better is known.
RETRY_AFTER_S = 5


class ApiError(Exception):
    def __init__(
        self, status: int, code: str, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers


def error_response(
    status: int, code: str, detail: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    if status == 503 and not any(k.lower() == "retry-after" for k in headers or {}):
        headers = {**(headers or {}), "Retry-After": str(RETRY_AFTER_S)}
    return JSONResponse({"error": code, "detail": detail}, status_code=status, headers=headers)


class ErrorBody(BaseModel):
    """Every error answer: a stable code and one line for people."""

    model_config = ConfigDict(extra="forbid")
    error: str
    detail: str


_WHY = {
    400: "Malformed request: body, parameter or header (the detail names it)",
    401: "Missing or unknown bearer token",
    403: "The token may not do this",
    404: "No such resource",
    409: "Conflicts with the current state",
    413: "Body too large",
    415: "Unsupported media type",
    503: "A dependency is unavailable; retry after Retry-After seconds",
}
# For documents written by hand (routes FastAPI cannot describe): a 503's header, an error.
RETRY_AFTER_HEADER: dict[str, Any] = {
    "Retry-After": {
        "description": "Seconds to wait before retrying",
        "required": True,
        "schema": {"type": "integer", "minimum": 0},
    }
}
ERROR_CONTENT: dict[str, Any] = {
    "application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}
}
BEARER: dict[str, Any] = {"security": [{"bearer": []}]}


def errors(*statuses: int, **why: str) -> dict[int | str, dict[str, Any]]:
    """FastAPI `responses=` for these error statuses, each with the JSON error schema.

    `why` overrides a description: `errors(400, 404, s404="No such post")`.
    """
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {
            "model": ErrorBody,
            "description": why.get(f"s{status}", _WHY.get(status, "Error")),
        }
        if status == 503:
            entry["headers"] = RETRY_AFTER_HEADER
        out[status] = entry
    return out


def json_body(schema: dict[str, Any], *, required: bool = True) -> dict[str, Any]:
    """`openapi_extra` for a route that parses its JSON body by hand."""
    return {
        "requestBody": {"required": required, "content": {"application/json": {"schema": schema}}}
    }


def add_schemas(app: FastAPI, schemas: dict[str, dict[str, Any]]) -> None:
    """Put named schemas into the document's components (for `$ref`s of hand-made bodies)."""
    app.state.extra_schemas = {**getattr(app.state, "extra_schemas", {}), **schemas}


def _allowed_methods(request: Request) -> str:
    """Every method some route of this path takes (Starlette names only the first route's)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches({**request.scope, "method": "GET"})
        route_methods = getattr(route, "methods", None)
        if match is not Match.NONE and route_methods:
            methods |= set(route_methods)
    return ", ".join(sorted(methods))


def _honest(app: FastAPI) -> None:
    """Post-process FastAPI's document: our handlers answer 400, never FastAPI's 422, so the
    422 entries (and their schemas) go; the bearer scheme and hand-made schemas go in."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        doc = generate()
        for path, item in doc.get("paths", {}).items():
            for operation in item.values():
                responses = operation.setdefault("responses", {})
                responses.pop("422", None)
                if getattr(app.state, "store_backed", False) and path not in _OPS_PATHS:
                    responses.setdefault(
                        "503",
                        {
                            "description": _STORE_DOWN,
                            "headers": RETRY_AFTER_HEADER,
                            "content": ERROR_CONTENT,
                        },
                    )
        components = doc.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        schemas.update(getattr(app.state, "extra_schemas", {}))
        components["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer"}
        }
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]


_STATUS_CODES = {
    400: "bad-request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    413: "too-large",
    415: "unsupported-media-type",
}


def _first_validation_error(exc: RequestValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return "invalid request"
    err = errors[0]
    where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
    return f"{where}: {err.get('msg', 'invalid')}"


# The store failing (unreachable, restarting, SQLite's busy timeout): a 503 the caller
# retries, never a 500. Errors of the query itself (a bug) stay 500s, so they are seen.
STORE_DOWN_ERRORS = (OperationalError, InterfaceError, PoolTimeout)
_STORE_DOWN = "The store (database) or a dependency is unavailable; retry after Retry-After"
_OPS_PATHS = ("/healthz", "/metrics")


def create_base_app(
    title: str, registry: CollectorRegistry, health: Any = None, *, store_backed: bool = False
) -> FastAPI:
    """A FastAPI app with the stack's error format, /healthz and /metrics.

    `store_backed`: every operation may answer 503 `store-unavailable` when its database
    fails (documented on each operation)."""
    app = FastAPI(title=title)
    app.state.store_backed = store_backed

    if store_backed:

        async def _store_down(_: Request, exc: Exception) -> JSONResponse:
            first = (str(getattr(exc, "orig", None) or exc).splitlines() or ["?"])[0]
            log.warning("store unavailable: %s", first)
            return error_response(503, "store-unavailable", f"store: {first}")

        for error in STORE_DOWN_ERRORS:
            app.add_exception_handler(error, _store_down)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.detail, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(400, "invalid", _first_validation_error(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "error")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = _allowed_methods(request)
        return error_response(exc.status_code, code, str(exc.detail), headers or None)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, Any]:
        detail = health() if health else {}
        return {"status": "ok", **detail}

    @app.get(
        "/metrics",
        tags=["ops"],
        response_class=Response,
        responses={
            200: {
                "description": "Prometheus text exposition format",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        },
    )
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    _honest(app)
    return app


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def serve(app: FastAPI, host: str, port: int) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
