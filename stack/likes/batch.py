"""A batch of likes on the wire: what `POST /v1/likes:batch` takes, and each item's answer.

A bad batch (not JSON, no `likes` list, too many items) is one 4xx; a bad item is only
that item's outcome, with the status and error a single like would have got.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from likkerctl.core.contract import ContractError, LikeMessage, parse_like, parse_like_data
from likkerctl.core.contract.http import ERROR_CONTENT, RETRY_AFTER_HEADER, ApiError
from stack.likes.limits import MAX_BATCH_BYTES, MAX_BATCH_ITEMS


@dataclass(frozen=True)
class Outcome:
    """What happened to one like: the status the single endpoint would have answered."""

    status: int
    code: str  # stored, duplicate, or the error code (invalid, not-found, forbidden, ...)
    request_id: str | None = None
    detail: str | None = None

    def as_json(self) -> dict[str, Any]:
        if self.status < 300:
            return {"request_id": self.request_id, "status": self.status, "outcome": self.code}
        return {
            "request_id": self.request_id,
            "status": self.status,
            "error": self.code,
            "detail": self.detail,
        }


def parse_item(item: Any) -> LikeMessage | Outcome:
    """One item of a batch: a like body as a JSON object, or a body verbatim as a string
    (how a taker forwards a message that is not JSON, so the contract's parser says why)."""
    try:
        if isinstance(item, str):
            return parse_like(item.encode())
        return parse_like_data(item)
    except ContractError as exc:
        request_id = item.get("request_id") if isinstance(item, dict) else None
        if not isinstance(request_id, str):
            request_id = None
        return Outcome(400, "invalid", request_id, str(exc))


def parse_batch(raw: bytes) -> list[Any]:
    """The items of a batch body `{"likes": [...]}`; ApiError when the batch itself is bad."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid", f"malformed JSON: {exc}") from exc
    items = data.get("likes") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise ApiError(400, "invalid", 'body must be a JSON object {"likes": [...]}')
    if len(items) > MAX_BATCH_ITEMS:
        raise ApiError(413, "too-large", f"{len(items)} likes; a batch takes {MAX_BATCH_ITEMS}")
    return items


# The batch body is parsed by hand (a bad item is that item's outcome, not a 422 for all),
# so FastAPI cannot describe it: this does.
_RESULT = {
    "type": "object",
    "required": ["request_id", "status"],
    "properties": {
        "request_id": {"type": ["string", "null"]},
        "status": {"type": "integer", "enum": [200, 201, 400, 403, 404, 503]},
        "outcome": {"type": "string", "enum": ["stored", "duplicate"]},
        "error": {"type": "string"},
        "detail": {"type": ["string", "null"]},
    },
}
BATCH_OPENAPI: dict[str, Any] = {
    "operationId": "add_likes",
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["likes"],
                    "properties": {
                        "likes": {
                            "type": "array",
                            "maxItems": MAX_BATCH_ITEMS,
                            "description": "Like message bodies (DESIGN §4) as JSON objects, "
                            "or a body's text as a string; any other item, like a bad one, is "
                            "only that item's outcome (400 invalid)",
                            "items": {},
                        }
                    },
                }
            }
        },
    },
    "responses": {
        "200": {
            "description": "One result per item, in order: status 201 stored, 200 duplicate, "
            "or the error a single like would get (400, 403, 404, 503) with error and detail",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["results"],
                        "properties": {"results": {"type": "array", "items": _RESULT}},
                    }
                }
            },
        },
        "400": {"description": "Not a batch", "content": ERROR_CONTENT},
        # More items than maxItems is a 413 (too large), not a 400.
        "413": {
            "description": f"Over {MAX_BATCH_ITEMS} items or {MAX_BATCH_BYTES} bytes",
            "content": ERROR_CONTENT,
        },
        "503": {
            "description": "The store failed: nothing of the batch was stored",
            "content": ERROR_CONTENT,
            "headers": RETRY_AFTER_HEADER,
        },
    },
}
