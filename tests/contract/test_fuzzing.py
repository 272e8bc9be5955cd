"""Schemathesis against the four HTTP surfaces of the running stack: gateway, auth, likes
and likkerctl's webhook.

Every operation of each OpenAPI document, with `--checks all` (server errors, undocumented
statuses, content types and headers such as Retry-After, response schemas, schema-valid input
refused, schema-violating input accepted, ignored auth, 405 without Allow, and the stateful
phase following the documents' links: create user → create bot → block bot, create post →
like). Seed and example counts are fixed in schemathesis.toml beside this file, so a run is
the same cases every time and takes about a minute. Zero failures is the bar: an endpoint
answering a status or reading a body its document does not declare fails here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import RunningStack

CONFIG = Path(__file__).with_name("schemathesis.toml")
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
ERROR_REF = "#/components/schemas/ErrorBody"
METHODS = {"get", "post", "put", "patch", "delete"}


def _url(stack: RunningStack, service: str) -> str:
    settings = stack.settings
    return {
        "gateway": settings.gateway_url,
        "auth": settings.auth_url,
        "likes": settings.likes_url,
        "webhook": settings.webhook_url,
    }[service]


def _token(stack: RunningStack, service: str, user_token: str) -> str:
    if service == "gateway":
        return user_token  # the public API: a user's token
    if service == "webhook":
        return stack.settings.webhook_token_file.read_text().strip()
    return stack.settings.admin_token()  # likes has no auth; the header is ignored there


@pytest.fixture(scope="module")
def user_token(contract_stack: RunningStack) -> str:
    return str(contract_stack.new_user()["token"])


@pytest.mark.parametrize("service", ["gateway", "auth", "likes", "webhook"])
def test_schemathesis_finds_nothing_wrong(
    service: str, contract_stack: RunningStack, user_token: str, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "LIKKER_FUZZ_TOKEN": _token(contract_stack, service, user_token),
        "LIKKER_FUZZ_USER_TOKEN": user_token,
        "NO_COLOR": "1",
    }
    report = tmp_path / "junit.xml"
    proc = subprocess.run(
        [
            str(SCHEMATHESIS),
            "--config-file",
            str(CONFIG),
            "run",
            f"{_url(contract_stack, service)}/openapi.json",
            "--checks",
            "all",
            "--report",
            "junit",
            "--report-junit-path",
            str(report),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-20000:] + proc.stderr[-2000:]
    # It really ran: cases generated for the operations, and none of them failed.
    assert "generated" in proc.stdout and " passed" in proc.stdout, proc.stdout[-3000:]
    assert report.exists()


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in METHODS
    ]


@pytest.mark.parametrize("service", ["gateway", "auth", "likes", "webhook"])
def test_every_operation_documents_its_body_statuses_and_security(
    service: str, contract_stack: RunningStack
) -> None:
    doc = contract_stack.http.get(f"{_url(contract_stack, service)}/openapi.json", timeout=5).json()
    assert doc["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "Authorization: Bearer",
    }
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    for path, method, op in _operations(doc):
        where = f"{service}: {method.upper()} {path}"
        statuses = set(op["responses"])
        assert "422" not in statuses, where  # our handlers answer 400, never FastAPI's 422
        assert any(s.startswith("2") for s in statuses), where
        if method == "post":
            assert "requestBody" in op, f"{where} reads a body its document does not declare"
        if op.get("parameters") or "requestBody" in op:
            assert "400" in statuses, f"{where} takes input but documents no 400"
        if "security" in op:
            assert op["security"] == [{"bearer": []}], where
            assert "401" in statuses, f"{where} needs a token but documents no 401"
        for status, response in op["responses"].items():
            if status.startswith(("4", "5")):
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": ERROR_REF}, f"{where} {status}"
            if status == "503":
                assert response["headers"]["Retry-After"]["required"] is True, where


# Bearer security on exactly the operations that check a token (likes: the takers' internal
# API, no token; ops routes: open).
SECURED = {
    "gateway": {"POST /v1/posts", "POST /v1/posts/{post_id}/likes"},
    "auth": {
        "POST /v1/users",
        "POST /v1/users/{user_id}/bots",
        "POST /v1/users/{user_id}/bans",
        "GET /v1/users/{user_id}/bans",
        "GET /v1/users/{user_id}/bans/{other_user_id}",
        "GET /v1/introspect",
        "GET /v1/bots",
        "GET /v1/bots/{bot_id}",
        "POST /v1/bots/{bot_id}/block",
        "DELETE /v1/bots/{bot_id}/block",
    },
    "likes": set(),
    "webhook": {"POST /alerts"},
}


@pytest.mark.parametrize("service", sorted(SECURED))
def test_bearer_security_is_declared_per_operation(
    service: str, contract_stack: RunningStack
) -> None:
    doc = contract_stack.http.get(f"{_url(contract_stack, service)}/openapi.json", timeout=5).json()
    secured = {f"{m.upper()} {p}" for p, m, op in _operations(doc) if "security" in op}
    assert secured == SECURED[service]


def test_ids_beyond_64_bits_are_400_not_500(contract_stack: RunningStack) -> None:
    """The two 500s schemathesis found in auth (issue 17)."""
    auth, admin = contract_stack.settings.auth_url, contract_stack.admin
    for method, path in (
        ("GET", "/v1/users/248875693/bans/2032207816641311145984"),
        ("DELETE", "/v1/bots/852868737803446580297072640/block"),
        ("GET", f"/v1/bots/{2**63}"),
        ("POST", f"/v1/users/{2**64}/bots"),
    ):
        resp = contract_stack.http.request(method, auth + path, headers=admin, timeout=5)
        assert resp.status_code == 400, (path, resp.status_code, resp.text)
        assert resp.json()["error"] == "invalid"
    resp = contract_stack.http.post(
        f"{auth}/v1/users/1/bans", headers=admin, json={"banned_user_id": 2**70}, timeout=5
    )
    assert resp.status_code == 400, resp.text
    likes = contract_stack.settings.likes_url
    for path in (f"/v1/posts/{2**64}", f"/v1/posts/{2**64}/likes"):
        assert contract_stack.http.get(likes + path, timeout=5).status_code == 400
    resp = contract_stack.http.post(
        f"{likes}/v1/posts", json={"author_user_id": 2**64, "text": "x"}, timeout=5
    )
    assert resp.status_code == 400, resp.text


@pytest.mark.parametrize(
    ("service", "method", "path", "allow"),
    [
        ("auth", "TRACE", "/v1/bots/1/block", "DELETE, POST"),
        ("auth", "PUT", "/v1/users", "POST"),
        ("gateway", "GET", "/v1/posts/1/likes", "POST"),
        ("likes", "DELETE", "/v1/posts/1/likes", "GET"),
        ("webhook", "GET", "/alerts", "POST"),
    ],
)
def test_405_names_every_method_of_the_path_in_allow(
    service: str, method: str, path: str, allow: str, contract_stack: RunningStack
) -> None:
    resp = contract_stack.http.request(method, _url(contract_stack, service) + path, timeout=5)
    assert resp.status_code == 405, resp.text
    assert resp.headers["Allow"] == allow
    assert resp.json() == {"error": "method-not-allowed", "detail": "Method Not Allowed"}
