"""The database failing under the likes service and auth: a 503 with Retry-After on every
route, never a 500, and the same process serves again once the database is back.

The apps run in-process (Starlette's TestClient) on a real PostgreSQL database of the
session's server; the fault is the server refusing the database (`ALLOW_CONNECTIONS false`
and its backends terminated), as when it restarts or fails over. What the takers make of
the likes service's 503 (retry with backoff, each like stored once) is tested on the live
stack in tests/faults/test_dependencies.py and tests/stack/test_stack_lifecycle.py.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg.sql
import pytest
from fastapi.testclient import TestClient

from stack.auth.app import AuthSettings
from stack.auth.app import create_app as auth_app
from stack.likes.app import LikesSettings
from stack.likes.app import create_app as likes_app
from stack.likes.limits import SINGLE_PATH
from tests.postgres import PostgresServer

ADMIN = "admin-token-for-the-store-test"


@contextmanager
def refused(server: PostgresServer, url: str) -> Iterator[None]:
    name = url.rsplit("/", 1)[1]
    ident = psycopg.sql.Identifier(name)
    with server._connect() as conn:
        conn.execute(psycopg.sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(ident))
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
    try:
        yield
    finally:
        with server._connect() as conn:
            conn.execute(psycopg.sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(ident))


def assert_store_503(resp: object) -> None:
    status = getattr(resp, "status_code", None)
    assert status == 503, getattr(resp, "text", resp)
    assert resp.headers["Retry-After"] == "5"  # type: ignore[attr-defined]
    body = resp.json()  # type: ignore[attr-defined]
    assert body["error"] == "store-unavailable", body
    assert "not currently accepting connections" in body["detail"], body


def like(post_id: int, user_id: int) -> bytes:
    doc = {"request_id": str(uuid.uuid4()), "post_id": post_id, "actor": {"user_id": user_id}}
    return json.dumps(doc).encode()


def test_likes_service_answers_503_while_its_store_is_down_and_stores_once_after(
    postgres_server: PostgresServer,
) -> None:
    url = postgres_server.new_database("likes_down")
    # Auth is never asked: every like here is the author's own (no ban to check).
    settings = LikesSettings(store_url=url, auth_url="http://127.0.0.1:9", admin_token=ADMIN)
    with TestClient(likes_app(settings), raise_server_exceptions=False) as client:
        made = client.post("/v1/posts", json={"author_user_id": 7, "text": "hello"})
        assert made.status_code == 201, made.text
        post = made.json()["post_id"]
        pending = like(post, 7)
        with refused(postgres_server, url):
            assert_store_503(client.post("/v1/posts", json={"author_user_id": 7, "text": "x"}))
            assert_store_503(client.get(f"/v1/posts/{post + 1}"))  # not cached: asks the store
            assert_store_503(client.get(f"/v1/posts/{post}/likes"))
            assert_store_503(client.post(SINGLE_PATH, content=pending))
            assert_store_503(
                client.post(f"{SINGLE_PATH}:batch", content=b'{"likes": [' + pending + b"]}")
            )
        # The taker's retry of the same message: stored now, and once.
        stored = client.post(SINGLE_PATH, content=pending)
        assert (stored.status_code, stored.json()["stored"]) == (201, True), stored.text
        again = client.post(SINGLE_PATH, content=pending)
        assert (again.status_code, again.json()["stored"]) == (200, False), again.text
        assert client.get(f"/v1/posts/{post}/likes").json()["count"] == 1


def test_auth_answers_503_while_its_store_is_down_then_serves_again(
    postgres_server: PostgresServer,
) -> None:
    url = postgres_server.new_database("auth_down")
    admin = {"Authorization": f"Bearer {ADMIN}"}
    with TestClient(
        auth_app(AuthSettings(store_url=url, admin_token=ADMIN)), raise_server_exceptions=False
    ) as client:
        user = client.post("/v1/users", json={"name": "ana"}, headers=admin)
        assert user.status_code == 201, user.text
        users = {"Authorization": f"Bearer {user.json()['token']}"}
        with refused(postgres_server, url):
            assert_store_503(client.post("/v1/users", json={"name": "bo"}, headers=admin))
            # Not a 401: the gateway must not take "auth cannot tell" for "no such token".
            assert_store_503(client.get("/v1/introspect", headers=users))
        assert client.post("/v1/users", json={"name": "bo"}, headers=admin).status_code == 201
        me = client.get("/v1/introspect", headers=users)
        assert me.status_code == 200, me.text


@pytest.mark.parametrize("service", ["likes", "auth"])
def test_every_operation_documents_the_store_503(service: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    app = (
        likes_app(LikesSettings(url, "http://127.0.0.1:9", ADMIN))
        if service == "likes"
        else auth_app(AuthSettings(url, ADMIN))
    )
    doc = app.openapi()
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if path in ("/healthz", "/metrics"):
                continue
            answer = operation["responses"].get("503")
            assert answer and "Retry-After" in answer["headers"], (method, path)
