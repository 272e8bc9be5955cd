"""The likes path end to end on a real stack (classified retry policy), once on SQLite
and once on PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from collections import Counter

import pytest
import requests

from likkerctl.core import contract
from tests.conftest import DATABASES, stack_fixture
from tests.helpers import RunningStack, mixed_batch, wait_for

# A long linger, so the mixed batch's eight messages are one batch even on a loaded machine
# (the default 5 ms could split them when the broker is slow to deliver the burst).
stack = stack_fixture(
    retry_policy="classified",
    takers=2,
    taker_rate=0,
    taker_linger_ms=250,
    databases=DATABASES,
)


def _assert_json_error(resp, status: int, code: str | None = None) -> None:  # type: ignore[no-untyped-def]
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error", "detail"}, body
    assert body["detail"]
    if code:
        assert body["error"] == code


def test_thousand_likes_from_users_are_stored_exactly_once(stack: RunningStack) -> None:
    pop = stack.population(users=40, posts=25)  # 1,000 distinct (user, post) pairs
    report = stack.load(pop, scenario="normal", rate=1000, duration_s=60, max_requests=1000)
    assert report.statuses == Counter({"202": 1000}), report.as_json()
    accepted = report.accepted["user"]
    assert len(set(accepted)) == 1000
    stored = stack.wait_stored(accepted)
    assert len(stored) == 1000
    assert set(stored.values()) == {1}


def test_bad_requests_get_a_4xx_json_error_never_a_5xx(stack: RunningStack) -> None:
    user = stack.new_user()
    post = stack.new_post(user["token"])
    gw = stack.settings.gateway_url
    http = stack.http
    auth = {"Authorization": f"Bearer {user['token']}"}
    _assert_json_error(http.post(f"{gw}/v1/posts/{post}/likes"), 401, "unauthenticated")
    _assert_json_error(
        http.post(f"{gw}/v1/posts/{post}/likes", headers={"Authorization": "Bearer nope"}), 401
    )
    _assert_json_error(
        http.post(f"{gw}/v1/posts/{post}/likes", headers={"Authorization": "Basic abc"}), 401
    )
    _assert_json_error(stack.like(post, user["token"], data=b"{not json"), 400, "invalid")
    _assert_json_error(stack.like(post, user["token"], data=b"[1, 2]"), 400, "invalid")
    _assert_json_error(http.post(f"{gw}/v1/posts/abc/likes", headers=auth), 400, "invalid")
    _assert_json_error(http.post(f"{gw}/v1/posts/{10**19}/likes", headers=auth), 400, "invalid")
    _assert_json_error(stack.like(10**9, user["token"]), 404, "not-found")
    _assert_json_error(stack.like(post, user["token"], headers={"Idempotency-Key": "x"}), 400)
    _assert_json_error(stack.like(post, user["token"], data=b" " * (65 * 1024)), 413)
    _assert_json_error(http.post(f"{gw}/v1/posts", headers=auth, data=b"{"), 400, "invalid")
    _assert_json_error(http.post(f"{gw}/v1/posts", headers=auth, json={"text": 5}), 400)
    _assert_json_error(http.post(f"{gw}/v1/posts", headers=auth), 400)
    _assert_json_error(http.post(f"{gw}/v1/posts", json={"text": "x"}), 401)
    _assert_json_error(http.get(f"{gw}/v1/nowhere"), 404)
    # The auth admin API answers in the same shape.
    _assert_json_error(http.post(f"{stack.settings.auth_url}/v1/users"), 401)
    _assert_json_error(http.post(f"{stack.settings.auth_url}/v1/users", headers=auth), 403)
    _assert_json_error(
        http.post(f"{stack.settings.auth_url}/v1/bots/1/block", headers=stack.admin, json={}), 400
    )


def test_the_like_route_is_in_the_gateways_openapi_document(stack: RunningStack) -> None:
    doc = stack.http.get(f"{stack.settings.gateway_url}/openapi.json", timeout=5).json()
    like = doc["paths"]["/v1/posts/{post_id}/likes"]["post"]
    assert {"202", "400", "401", "403", "404", "413", "503"} <= set(like["responses"])


def test_idempotency_key_makes_a_retried_like_one_message(stack: RunningStack) -> None:
    user = stack.new_user()
    post = stack.new_post(user["token"])
    key = str(uuid.uuid4())
    first = stack.like(post, user["token"], headers={"Idempotency-Key": key})
    second = stack.like(post, user["token"], headers={"Idempotency-Key": key})
    assert first.status_code == second.status_code == 202
    assert first.json()["request_id"] == second.json()["request_id"] == key
    assert stack.wait_stored([key]) == {key: 1}


def test_blocked_bot_gets_403_from_the_next_request_and_nothing_is_enqueued(
    stack: RunningStack,
) -> None:
    owner = stack.new_user()
    bot = stack.new_bot(owner["user_id"])
    before, after = stack.new_post(owner["token"]), stack.new_post(owner["token"])
    assert stack.like(before, bot["token"]).status_code == 202  # token now cached at the gateway
    blocked = stack.http.post(
        f"{stack.settings.auth_url}/v1/bots/{bot['bot_id']}/block",
        headers=stack.admin,
        json={"reason": "test"},
        timeout=5,
    )
    assert blocked.status_code == 200 and blocked.json()["blocked"] is True
    refused = stack.like(after, bot["token"])
    _assert_json_error(refused, 403, "bot-blocked")
    # The pre-block like is stored; had the refused one been enqueued it would be too.
    assert wait_for(lambda: _count(stack, before) == 1, timeout=30)
    stack.http.post(
        f"{stack.settings.gateway_url}/v1/posts/{after}/likes",
        headers={"Authorization": f"Bearer {owner['token']}"},
    ).raise_for_status()
    assert wait_for(lambda: _count(stack, after) == 1, timeout=30)  # the owner's own like only
    listed = stack.http.get(
        f"{stack.settings.auth_url}/v1/bots?blocked=true", headers=stack.admin
    ).json()["bots"]
    assert bot["bot_id"] in [b["bot_id"] for b in listed]


def _count(stack: RunningStack, post: int) -> int:
    resp = stack.http.get(f"{stack.settings.likes_url}/v1/posts/{post}/likes", timeout=5)
    return int(resp.json()["count"])


def test_friday_under_classified_dead_letters_the_bot_and_drains(stack: RunningStack) -> None:
    pop = stack.population(users=40, posts=30, friday=True)  # more pairs than likes sent
    report = stack.load(pop, scenario="friday", rate=300, duration_s=4, bot_share=0.3)
    bot_ids, user_ids = report.accepted["bot"], report.accepted["user"]
    assert bot_ids and user_ids, report.as_json()
    stored = stack.wait_stored(user_ids)
    assert len(stored) == len(user_ids) and set(stored.values()) == {1}
    assert pop.bot is not None and stack.rows_for_bot(pop.bot.bot_id or 0) == 0

    def drained() -> bool:
        q = stack.queue(contract.ACTIONS_QUEUE)
        return q.get("messages", 1) == 0

    assert wait_for(drained, timeout=60)
    dead = [(m, h) for m, h in stack.dead_letters() if h.get("likker-bot") == pop.bot.bot_id]
    assert sorted(m for m, _ in dead) == sorted(bot_ids)
    dead_headers = [h for _, h in dead]
    assert {h["likker-failure"] for h in dead_headers} == {"forbidden"}
    assert all("banned" in h["likker-failure-detail"] for h in dead_headers)


def test_kill_9_of_a_taker_mid_load_loses_and_doubles_nothing(stack: RunningStack) -> None:
    pop = stack.population(users=40, posts=50)
    join = stack.load_in_background(pop, scenario="normal", rate=300, duration_s=6)
    victim = stack.records()["taker-1"]
    wait_for(
        lambda: stack.queue(contract.ACTIONS_QUEUE).get("messages_unacknowledged", 0) > 0, timeout=5
    )
    time.sleep(2)
    os.kill(victim.pid, signal.SIGKILL)
    report = join()
    accepted = report.accepted["user"]
    assert report.statuses["202"] == len(accepted) > 500
    stored = stack.wait_stored(accepted)
    assert len(stored) == len(accepted), f"{len(accepted) - len(stored)} accepted likes lost"
    assert set(stored.values()) == {1}


@pytest.fixture(autouse=True)
def _restart_dead_parts(stack: RunningStack):  # type: ignore[no-untyped-def]
    yield
    from stack import supervisor

    supervisor.up(stack.settings)  # bring back anything a test killed


def test_takers_pause_and_resume_over_the_control_exchange(stack: RunningStack) -> None:
    states = stack.control("status")
    assert sorted(s["taker_id"] for s in states) == ["taker-1", "taker-2"]
    assert all(s["state"] == "running" for s in states)

    paused = stack.control("pause", "taker-1")
    assert [(s["taker_id"], s["state"]) for s in paused] == [("taker-1", "paused")]
    assert wait_for(lambda: stack.consumers() == 1, timeout=15)

    stack.control("pause")
    assert wait_for(lambda: stack.consumers() == 0, timeout=15)
    user = stack.new_user()
    post = stack.new_post(user["token"])
    rid = stack.like(post, user["token"]).json()["request_id"]
    time.sleep(1.5)
    assert stack.stored([rid]) == {}  # nobody is taking
    assert stack.taker_state("taker-2")["paused"] is True

    resumed = stack.control("resume")
    assert sorted((s["taker_id"], s["state"]) for s in resumed) == [
        ("taker-1", "running"),
        ("taker-2", "running"),
    ]
    assert wait_for(lambda: stack.consumers() == 2, timeout=15)
    assert stack.wait_stored([rid], timeout=30) == {rid: 1}


def _as_item(body: bytes) -> object:
    """A message body as a batch item: the JSON itself, or its text when it is not JSON."""
    try:
        return json.loads(body)
    except ValueError:
        return body.decode()


def _rows(stack: RunningStack) -> int:
    with stack._engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT count(*) FROM likes").scalar_one())


def test_the_batch_endpoint_judges_each_item_and_stores_only_the_allowed_ones(
    stack: RunningStack,
) -> None:
    pop = stack.population(users=2, posts=3, friday=True)
    mixed = mixed_batch(stack, pop)
    items = [
        json.loads(body) if body.startswith(b'{"') else body.decode() for body, _ in mixed.messages
    ]
    resp = stack.http.post(
        f"{stack.settings.likes_url}/v1/likes:batch", json={"likes": items}, timeout=10
    )
    assert resp.status_code == 200, resp.text
    results = resp.json()["results"]
    assert [(r["status"], r.get("outcome") or r["error"]) for r in results] == [
        (201, "stored"),
        (200, "duplicate"),  # the like stored through the gateway before
        (201, "stored"),
        (403, "forbidden"),
        (400, "invalid"),  # not JSON: sent as a string, judged by the contract's parser
        (200, "duplicate"),  # the twin of the third item, in the same batch
        (404, "not-found"),
        (400, "invalid"),
    ]
    assert "not JSON" in results[4]["detail"] and "banned" in results[3]["detail"]
    assert stack.stored(mixed.stored) == dict.fromkeys(mixed.stored, 1)
    refused = [json.loads(b)["request_id"] for b, _ in mixed.messages if b'"actor"' in b]
    assert set(stack.stored(refused)) == set(mixed.stored) - {m for m in mixed.refused} or not set(
        stack.stored(refused)
    ) & set(mixed.refused)


def test_a_bad_batch_is_one_json_4xx_and_stores_nothing(stack: RunningStack) -> None:
    user = stack.new_user()
    post = stack.new_post(user["token"])
    like = json.loads(contract.new_like(post, contract.Actor(user["user_id"])).body())
    url = f"{stack.settings.likes_url}/v1/likes:batch"
    before = _rows(stack)
    for body, status in [
        (b"{not json", 400),
        (b"[]", 400),
        (json.dumps({"likes": like}).encode(), 400),
        (json.dumps({"items": [like]}).encode(), 400),
        (json.dumps({"likes": [like] * 1001}).encode(), 413),
        (b'{"likes": ["' + b"x" * (4 * 1024 * 1024) + b'"]}', 413),
    ]:
        _assert_json_error(stack.http.post(url, data=body, timeout=10), status)
    assert _rows(stack) == before
    assert stack.stored([like["request_id"]]) == {}
    empty = stack.http.post(url, json={"likes": []}, timeout=10)
    assert empty.status_code == 200 and empty.json() == {"results": []}


def test_a_mixed_batch_acks_and_dead_letters_exactly_the_right_messages(
    stack: RunningStack,
) -> None:
    pop = stack.population(users=2, posts=3, friday=True)
    mixed = mixed_batch(stack, pop)
    # A taker answers a pause once its consumer is cancelled.
    assert [s["state"] for s in stack.control("pause")] == ["paused", "paused"]
    before = stack.taker_state("taker-1")
    stack.publish(mixed.messages)
    stack.control("resume", "taker-1")  # one taker takes them all, in one batch
    n = len(mixed.messages)
    assert wait_for(lambda: stack.taker_state("taker-1")["processed"] >= before["processed"] + n)
    after = stack.taker_state("taker-1")
    stack.control("resume")
    assert after["processed"] - before["processed"] == n
    assert after["batches"] - before["batches"] == 1, "the messages were not one batch"

    assert stack.stored(mixed.stored) == dict.fromkeys(mixed.stored, 1)
    ours = [(m, h) for m, h in stack.dead_letters() if m in mixed.refused]
    assert sorted((m, h["likker-failure"]) for m, h in ours) == sorted(mixed.refused.items())
    assert all(h["likker-failure-detail"] for _, h in ours)
    assert wait_for(lambda: stack.held_and_ready() == 0, timeout=20)  # nothing requeued


def test_concurrent_deliveries_of_one_like_to_the_likes_service_store_one_row(
    stack: RunningStack,
) -> None:
    """Redeliveries of one message reaching the likes service at once (two takers, a
    requeue racing its original): exactly one is stored, every other is a duplicate."""
    user = stack.new_user()
    post = stack.new_post(user["token"])
    like = json.loads(contract.new_like(post, contract.Actor(user["user_id"])).body())
    url = f"{stack.settings.likes_url}/v1/likes:batch"
    barrier = threading.Barrier(12)
    outcomes: list[str] = []

    def deliver() -> None:
        barrier.wait()
        resp = requests.post(url, json={"likes": [like]}, timeout=30)
        outcomes.append(resp.json()["results"][0].get("outcome") if resp.ok else resp.text)

    threads = [threading.Thread(target=deliver) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert Counter(outcomes) == {"stored": 1, "duplicate": 11}
    assert stack.stored([like["request_id"]]) == {like["request_id"]: 1}
    assert _count(stack, post) == 1
