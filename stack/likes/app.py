"""HTTP API of the likes service: posts, like counts, and the takers' likes, one or a batch.

`POST /v1/likes:batch` authorizes every item, stores the allowed ones in one transaction and
answers one outcome per item; `POST /v1/likes` is the same path for a single like.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, Counter, Histogram
from pydantic import BaseModel, Field
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from likkerctl.core.contract import ID_MAX, LIKE_SCHEMA, ContractError, LikeMessage, parse_like
from likkerctl.core.contract.http import ApiError, Id, create_base_app, errors, json_body
from stack.db import make_engine
from stack.likes.batch import BATCH_OPENAPI, Outcome, parse_batch, parse_item
from stack.likes.limits import BATCH_PATH, MAX_BATCH_BYTES, MAX_LIKE_BYTES, SINGLE_PATH
from stack.likes.store import LikesStore


@dataclass
class LikesSettings:
    store_url: str
    auth_url: str
    admin_token: str
    # Each author's ban list is read from auth at most this often.
    ban_cache_seconds: float = 2.0


async def _body_capped(request: Request, limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "too-large", f"body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class NewPost(BaseModel):
    author_user_id: int = Field(ge=1, le=ID_MAX)
    text: str = Field(min_length=1, max_length=5000)


class PostView(BaseModel):
    post_id: int
    author_user_id: int


class LikeCount(BaseModel):
    post_id: int
    count: int


_POST_LINKS = {
    "links": {
        "ShowPost": {
            "operationId": "show_post",
            "parameters": {"post_id": "$response.body#/post_id"},
        },
        "CountLikes": {
            "operationId": "like_count",
            "parameters": {"post_id": "$response.body#/post_id"},
        },
    }
}
_LIKE_ANSWER = {
    "type": "object",
    "required": ["request_id", "stored"],
    "properties": {"request_id": {"type": "string"}, "stored": {"type": "boolean"}},
}


class BanChecker:
    """Asks auth whom a post's author has banned; one cached list per author."""

    def __init__(self, client: httpx.Client, ttl: float) -> None:
        self._client = client
        self._ttl = ttl
        self._cache: dict[int, tuple[frozenset[int], float]] = {}
        self._lock = threading.Lock()

    def banned(self, author_id: int, actor_user_id: int, *, fetch: bool = True) -> bool:
        """`fetch=False`: answer from the cache only (auth already failed in this batch)."""
        return actor_user_id in self._bans_of(author_id, fetch)

    def _bans_of(self, author_id: int, fetch: bool) -> frozenset[int]:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(author_id)
        if hit and hit[1] > now:
            return hit[0]
        if not fetch:
            raise ApiError(503, "auth-unavailable", "auth service failed earlier in this batch")
        try:
            resp = self._client.get(f"/v1/users/{author_id}/bans")
        except httpx.HTTPError as exc:
            raise ApiError(503, "auth-unavailable", f"auth service: {exc}") from exc
        if resp.status_code == 404:
            bans: frozenset[int] = frozenset()  # unknown author: nobody banned
        elif resp.status_code != 200:
            raise ApiError(503, "auth-unavailable", f"auth service answered {resp.status_code}")
        else:
            bans = frozenset(resp.json()["banned_user_ids"])
        with self._lock:
            self._cache[author_id] = (bans, now + self._ttl)
        return bans


def create_app(settings: LikesSettings, *, store: LikesStore | None = None) -> FastAPI:
    registry = CollectorRegistry()
    outcomes = Counter(
        "likker_likes_outcomes", "Like requests by outcome", ["outcome"], registry=registry
    )
    store_seconds = Histogram(
        "likker_likes_store_seconds",
        "Time of one store transaction (a batch, or a single like)",
        registry=registry,
        buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
    )
    store = store or LikesStore(make_engine(settings.store_url))
    auth = httpx.Client(
        base_url=settings.auth_url,
        headers={"Authorization": f"Bearer {settings.admin_token}"},
        timeout=5.0,
    )
    bans = BanChecker(auth, settings.ban_cache_seconds)
    authors: dict[int, int] = {}  # posts never change author: cache forever

    app = create_base_app("likker-likes", registry, store_backed=True)

    def author_of(post_id: int) -> int | None:
        return authors_of([post_id]).get(post_id)

    def authors_of(post_ids: set[int] | list[int]) -> dict[int, int]:
        missing = [p for p in post_ids if p not in authors]
        if missing:
            authors.update(store.post_authors(missing))  # one query for the whole batch
        return {p: authors[p] for p in post_ids if p in authors}

    @app.post(
        "/v1/posts",
        status_code=201,
        operation_id="create_post",
        response_model=PostView,
        responses={201: _POST_LINKS, **errors(400)},
    )
    def create_post(body: NewPost) -> dict[str, object]:
        post_id = store.create_post(body.author_user_id, body.text)
        authors[post_id] = body.author_user_id
        return {"post_id": post_id, "author_user_id": body.author_user_id}

    @app.get(
        "/v1/posts/{post_id}",
        operation_id="show_post",
        response_model=PostView,
        responses=errors(400, 404, s404="No such post"),
    )
    def show_post(post_id: Id) -> dict[str, object]:
        author = author_of(post_id)
        if author is None:
            raise ApiError(404, "not-found", f"no post {post_id}")
        return {"post_id": post_id, "author_user_id": author}

    @app.get(
        "/v1/posts/{post_id}/likes",
        operation_id="like_count",
        response_model=LikeCount,
        responses=errors(400, 404, s404="No such post"),
    )
    def like_count(post_id: Id) -> dict[str, object]:
        if author_of(post_id) is None:
            raise ApiError(404, "not-found", f"no post {post_id}")
        return {"post_id": post_id, "count": store.like_count(post_id)}

    def judge_and_store(parsed: list[LikeMessage | Outcome]) -> list[Outcome]:
        """Authorize each like, store the allowed ones in one transaction; one outcome each."""
        known = authors_of({p.post_id for p in parsed if isinstance(p, LikeMessage)})
        results: list[Outcome | None] = [p if isinstance(p, Outcome) else None for p in parsed]
        allowed: list[tuple[int, LikeMessage]] = []
        auth_failed = False
        for i, like in enumerate(parsed):
            if isinstance(like, Outcome):
                continue
            author, user = known.get(like.post_id), like.actor.user_id
            if author is None:
                results[i] = Outcome(404, "not-found", like.request_id, f"no post {like.post_id}")
                continue
            if author != user:
                try:
                    banned = bans.banned(author, user, fetch=not auth_failed)
                except ApiError as exc:  # auth down: this like is retried, the others go on
                    auth_failed = True
                    results[i] = Outcome(exc.status, exc.code, like.request_id, exc.detail)
                    continue
                if banned:
                    results[i] = Outcome(
                        403,
                        "forbidden",
                        like.request_id,
                        f"user {user} is banned by user {author}, the author of post "
                        f"{like.post_id}",
                    )
                    continue
            allowed.append((i, like))
        started = time.perf_counter()
        try:
            new = store.add_likes([like for _, like in allowed])
        except SQLAlchemyError as exc:
            raise ApiError(503, "store-unavailable", f"likes store: {exc}".splitlines()[0]) from exc
        store_seconds.observe(time.perf_counter() - started)
        for i, like in allowed:
            if like.request_id in new:
                new.discard(like.request_id)  # a twin later in this batch is a duplicate
                results[i] = Outcome(201, "stored", like.request_id)
            else:
                results[i] = Outcome(200, "duplicate", like.request_id)
        done = [r for r in results if r is not None]
        assert len(done) == len(parsed)
        for r in done:
            outcomes.labels(r.code).inc()
        return done

    # The taker posts queue message bodies verbatim; they are parsed with the contract's own
    # parser (not a pydantic model) so a bad message gets the contract's error.
    @app.post(
        SINGLE_PATH,
        operation_id="add_like",
        response_class=JSONResponse,
        responses={
            201: {
                "description": "Stored",
                "content": {"application/json": {"schema": _LIKE_ANSWER}},
            },
            200: {
                "description": "Already stored (a duplicate request id, or the same user and "
                "post): nothing new",
                "content": {"application/json": {"schema": _LIKE_ANSWER}},
            },
            **errors(
                400,
                403,
                404,
                413,
                503,
                s400="Not a like (the contract's parser says why)",
                s403="The post's author banned the actor's user",
                s404="No such post",
                s413=f"Body over {MAX_LIKE_BYTES} bytes",
                s503="Auth (for the ban check) or the store unavailable",
            ),
        },
        openapi_extra=json_body(LIKE_SCHEMA),
    )
    async def add_like_raw(request: Request) -> JSONResponse:
        return await run_in_threadpool(_add_like, await _body_capped(request, MAX_LIKE_BYTES))

    def _add_like(body: bytes) -> JSONResponse:
        try:
            like: LikeMessage | Outcome = parse_like(body)
        except ContractError as exc:
            like = Outcome(400, "invalid", None, str(exc))
        (result,) = judge_and_store([like])
        if result.status >= 300:
            raise ApiError(result.status, result.code, result.detail or result.code)
        return JSONResponse(
            {"request_id": result.request_id, "stored": result.code == "stored"},
            status_code=result.status,
        )

    @app.post(BATCH_PATH, openapi_extra=BATCH_OPENAPI)
    async def add_likes_raw(request: Request) -> JSONResponse:
        return await run_in_threadpool(_add_likes, await _body_capped(request, MAX_BATCH_BYTES))

    def _add_likes(body: bytes) -> JSONResponse:
        results = judge_and_store([parse_item(item) for item in parse_batch(body)])
        return JSONResponse({"results": [r.as_json() for r in results]})

    return app
