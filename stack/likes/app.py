"""HTTP API of the likes service: posts, like counts, and `POST /v1/likes` for the takers."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, Counter
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from likkerctl.core.contract import ContractError, parse_like
from likkerctl.core.contract.http import ApiError, create_base_app
from stack.db import make_engine
from stack.likes.store import LikesStore


@dataclass
class LikesSettings:
    store_url: str
    auth_url: str
    admin_token: str
    # Each author's ban list is read from auth at most this often.
    ban_cache_seconds: float = 2.0


class NewPost(BaseModel):
    author_user_id: int
    text: str = Field(min_length=1, max_length=5000)


class BanChecker:
    """Asks auth whom a post's author has banned; one cached list per author."""

    def __init__(self, client: httpx.Client, ttl: float) -> None:
        self._client = client
        self._ttl = ttl
        self._cache: dict[int, tuple[frozenset[int], float]] = {}
        self._lock = threading.Lock()

    def banned(self, author_id: int, actor_user_id: int) -> bool:
        return actor_user_id in self._bans_of(author_id)

    def _bans_of(self, author_id: int) -> frozenset[int]:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(author_id)
        if hit and hit[1] > now:
            return hit[0]
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
    store = store or LikesStore(make_engine(settings.store_url))
    auth = httpx.Client(
        base_url=settings.auth_url,
        headers={"Authorization": f"Bearer {settings.admin_token}"},
        timeout=5.0,
    )
    bans = BanChecker(auth, settings.ban_cache_seconds)
    authors: dict[int, int] = {}  # posts never change author: cache forever

    app = create_base_app("likker-likes", registry)

    def author_of(post_id: int) -> int | None:
        author = authors.get(post_id)
        if author is None:
            author = store.post_author(post_id)
            if author is not None:
                authors[post_id] = author
        return author

    @app.post("/v1/posts", status_code=201)
    def create_post(body: NewPost) -> dict[str, object]:
        post_id = store.create_post(body.author_user_id, body.text)
        authors[post_id] = body.author_user_id
        return {"post_id": post_id, "author_user_id": body.author_user_id}

    @app.get("/v1/posts/{post_id}")
    def show_post(post_id: int) -> dict[str, object]:
        author = author_of(post_id)
        if author is None:
            raise ApiError(404, "not-found", f"no post {post_id}")
        return {"post_id": post_id, "author_user_id": author}

    @app.get("/v1/posts/{post_id}/likes")
    def like_count(post_id: int) -> dict[str, object]:
        if author_of(post_id) is None:
            raise ApiError(404, "not-found", f"no post {post_id}")
        return {"post_id": post_id, "count": store.like_count(post_id)}

    # The taker posts the queue message body verbatim; it is parsed with the contract's own
    # parser (not a pydantic model) so a bad message gets the contract's error.
    @app.post("/v1/likes")
    async def add_like_raw(request: Request) -> JSONResponse:
        return await run_in_threadpool(_add_like, await request.body())

    def _add_like(body: bytes) -> JSONResponse:
        try:
            like = parse_like(body)
        except ContractError as exc:
            outcomes.labels("invalid").inc()
            raise ApiError(400, "invalid", str(exc)) from exc
        author = author_of(like.post_id)
        if author is None:
            outcomes.labels("not-found").inc()
            raise ApiError(404, "not-found", f"no post {like.post_id}")
        if author != like.actor.user_id and bans.banned(author, like.actor.user_id):
            outcomes.labels("forbidden").inc()
            raise ApiError(
                403,
                "forbidden",
                f"user {like.actor.user_id} is banned by user {author}, the author of post "
                f"{like.post_id}",
            )
        stored = store.add_like(like)
        outcomes.labels("stored" if stored else "duplicate").inc()
        return JSONResponse(
            {"request_id": like.request_id, "stored": stored},
            status_code=201 if stored else 200,
        )

    return app
