"""Who may call what: every admin route of auth with no token, an unknown token, a user's,
that user's bot's and the admin's; every gateway route with a blocked bot's token (and its
owner's, so the table is not all refusals). One table each; each cell is a real call.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from likkerctl.core import contract
from tests.helpers import RunningStack, wait_for

WHO = ("none", "unknown", "user", "bot", "admin")


@dataclass(frozen=True)
class Cast:
    """The principals and objects the calls are about: `user` owns `bot`; `other` is
    somebody else, for bans."""

    tokens: dict[str, str | None]
    user_id: int
    other_id: int
    bot_id: int


@pytest.fixture(scope="module")
def cast(contract_stack: RunningStack) -> Cast:
    user = contract_stack.new_user()
    other = contract_stack.new_user()
    bot = contract_stack.new_bot(user["user_id"])
    return Cast(
        tokens={
            "none": None,
            "unknown": "not-a-token-of-anyone",
            "user": user["token"],
            "bot": bot["token"],
            "admin": contract_stack.settings.admin_token(),
        },
        user_id=user["user_id"],
        other_id=other["user_id"],
        bot_id=bot["bot_id"],
    )


# route → expected status per principal, in WHO's order. Admin-only routes: 401 without a
# credential (none, or one nobody holds), 403 with a credential that is not the admin's.
# Self-or-admin routes (a user's own bots and bans): the user may, the user's bot may not.
AUTH_MATRIX: dict[tuple[str, str], tuple[int, int, int, int, int]] = {
    ("POST", "/v1/users"): (401, 401, 403, 403, 201),
    ("POST", "/v1/users/{user}/bots"): (401, 401, 201, 403, 201),
    ("POST", "/v1/users/{user}/bans"): (401, 401, 201, 403, 201),
    ("GET", "/v1/users/{user}/bans"): (401, 401, 403, 403, 200),
    ("GET", "/v1/users/{user}/bans/{other}"): (401, 401, 403, 403, 200),
    ("GET", "/v1/bots"): (401, 401, 403, 403, 200),
    ("GET", "/v1/bots/{bot}"): (401, 401, 403, 403, 200),
    ("POST", "/v1/bots/{bot}/block"): (401, 401, 403, 403, 200),
    ("DELETE", "/v1/bots/{bot}/block"): (401, 401, 403, 403, 200),
    # Not an admin route, for contrast: introspection is about the token presented, and the
    # admin token belongs to no user.
    ("GET", "/v1/introspect"): (401, 401, 200, 200, 401),
}
BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/v1/users/{user}/bans"): {"banned_user_id": "{other}"},
    ("POST", "/v1/bots/{bot}/block"): {"reason": "authorization matrix"},
}


def _fill(template: Any, cast: Cast) -> Any:
    text = json.dumps(template)
    for name, value in (("user", cast.user_id), ("other", cast.other_id), ("bot", cast.bot_id)):
        text = text.replace(f'"{{{name}}}"', str(value)).replace(f"{{{name}}}", str(value))
    return json.loads(text)


def _headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token is not None else {}


def test_every_admin_route_of_auth_answers_each_principal_as_the_table_says(
    contract_stack: RunningStack, cast: Cast
) -> None:
    auth = contract_stack.settings.auth_url
    got: dict[tuple[str, str], tuple[int, ...]] = {}
    for (method, route), _expected in AUTH_MATRIX.items():
        row = []
        for who in WHO:
            body = BODIES.get((method, route))
            resp = contract_stack.http.request(
                method,
                auth + _fill(route, cast),
                headers=_headers(cast.tokens[who]),
                json=_fill(body, cast) if body is not None else None,
                timeout=10,
            )
            if resp.status_code >= 400:
                assert set(resp.json()) == {"error", "detail"}, resp.text
            row.append(resp.status_code)
        got[(method, route)] = tuple(row)
    assert got == AUTH_MATRIX
    # The table's own premises: admin routes were all exercised, and the block above was
    # undone by the unblock (the bot is not left blocked for the gateway table).
    shown = contract_stack.http.get(
        f"{auth}/v1/bots/{cast.bot_id}", headers=contract_stack.admin, timeout=5
    ).json()
    assert shown["blocked"] is False


# The gateway with a blocked bot's token, and with its owner's: route → (bot, owner).
GATEWAY_MATRIX: dict[tuple[str, str], tuple[int, int]] = {
    ("POST", "/v1/posts"): (403, 201),
    ("POST", "/v1/posts/{post}/likes"): (403, 202),
    ("GET", "/healthz"): (200, 200),
}


def test_a_blocked_bots_token_is_refused_on_every_gateway_route_and_enqueues_nothing(
    contract_stack: RunningStack,
) -> None:
    owner = contract_stack.new_user()
    bot = contract_stack.new_bot(owner["user_id"])
    post = contract_stack.new_post(owner["token"])
    resp = contract_stack.http.post(
        f"{contract_stack.settings.auth_url}/v1/bots/{bot['bot_id']}/block",
        headers=contract_stack.admin,
        json={"reason": "authorization matrix"},
        timeout=5,
    )
    assert resp.status_code == 200 and resp.json()["blocked"] is True
    gateway = contract_stack.settings.gateway_url
    bodies = {("POST", "/v1/posts"): {"text": "from a blocked bot?"}}

    def call(method: str, route: str, token: str) -> int:
        return contract_stack.http.request(
            method,
            gateway + route.replace("{post}", str(post)),
            headers=_headers(token),
            json=bodies.get((method, route)),
            timeout=10,
        ).status_code

    # The block reaches the gateway over the broker; the first refusal shows it has.
    assert wait_for(lambda: call("POST", "/v1/posts/{post}/likes", bot["token"]) == 403, 10)
    got = {
        (method, route): (call(method, route, bot["token"]), call(method, route, owner["token"]))
        for method, route in GATEWAY_MATRIX
    }
    assert got == GATEWAY_MATRIX
    # Nothing of the bot's reached the queue or the store: its only like attempt would be
    # a row with its bot id; the owner's one like is stored.
    count = contract_stack.settings.likes_url + f"/v1/posts/{post}/likes"
    assert wait_for(lambda: contract_stack.http.get(count, timeout=5).json()["count"] == 1, 30)
    assert contract_stack.rows_for_bot(bot["bot_id"]) == 0
    queued = [
        *contract_stack.sample(contract.DLQ_QUEUE, 1000),
        *contract_stack.sample(contract.ACTIONS_QUEUE, 1000),
    ]
    assert all(
        m["properties"].get("headers", {}).get(contract.H_BOT) != bot["bot_id"] for m in queued
    )
