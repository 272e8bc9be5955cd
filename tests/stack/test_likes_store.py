"""The likes store on SQLite and on PostgreSQL: concurrent deliveries of the same likes
store each exactly once, and no batch fails for having met another."""

from __future__ import annotations

import random
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from likkerctl.core import contract
from stack.db import make_engine
from stack.likes.store import LikesStore
from tests.conftest import DATABASES
from tests.postgres import PostgresServer


@pytest.fixture(params=DATABASES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LikesStore]:
    if request.param == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        url = server.new_database("store")
    else:
        url = f"sqlite:///{tmp_path / 'likes.db'}"
    engine = make_engine(url)
    yield LikesStore(engine)
    engine.dispose()


def _rows(store: LikesStore) -> list[tuple[str, int, int]]:
    with store.engine.connect() as conn:
        return [
            (r, p, u)
            for r, p, u in conn.execute(text("SELECT request_id, post_id, user_id FROM likes"))
        ]


def _at_once(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run the calls in threads released together; their results (or exceptions) in order."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = calls[i]()
        except Exception as exc:  # reported by the test as a failed batch
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results


def test_concurrent_deliveries_of_one_request_id_store_exactly_one_row(
    store: LikesStore,
) -> None:
    post = store.create_post(1, "hi")
    like = contract.new_like(post, contract.Actor(7))
    results = _at_once([lambda: store.add_likes([like]) for _ in range(16)])
    assert not [r for r in results if isinstance(r, Exception)], results
    assert Counter(len(r) for r in results) == {1: 1, 0: 15}  # one stored, 15 duplicates
    assert _rows(store) == [(like.request_id, post, 7)]


def test_concurrent_batches_of_the_same_likes_store_each_once_and_none_fails(
    store: LikesStore,
) -> None:
    posts = [store.create_post(1, "hi") for _ in range(20)]
    likes = [contract.new_like(p, contract.Actor(u)) for p in posts for u in range(100, 110)]

    def deliver() -> set[str]:
        batch = list(likes)
        random.shuffle(batch)  # each taker got the redeliveries in its own order
        return store.add_likes(batch)

    results = _at_once([deliver for _ in range(8)])
    assert not [r for r in results if isinstance(r, Exception)], results
    stored_by = Counter(rid for r in results for rid in r)
    assert stored_by == dict.fromkeys((like.request_id for like in likes), 1)
    assert sorted(r for r, _p, _u in _rows(store)) == sorted(like.request_id for like in likes)


def test_crossing_twins_under_other_request_ids_never_fail_a_batch(store: LikesStore) -> None:
    """Two batches with the same (post, user) pairs under other request ids, in key orders
    that cross: on PostgreSQL they can deadlock, and the store runs the loser again."""
    posts = [store.create_post(1, "hi") for _ in range(40)]
    for _round in range(10):
        user = random.randrange(10**6)
        first, second = [], []
        for i, post in enumerate(posts):
            a = contract.new_like(post, contract.Actor(user))
            b = contract.new_like(post, contract.Actor(user))
            # `first` holds the lower request id of even posts' pairs, the higher of odd ones':
            # in key order the two batches meet the pairs in opposite orders.
            lo, hi = sorted([str(uuid.uuid4()), str(uuid.uuid4())])
            a = contract.LikeMessage(lo if i % 2 else hi, post, a.actor, a.received_at)
            b = contract.LikeMessage(hi if i % 2 else lo, post, b.actor, b.received_at)
            first.append(a)
            second.append(b)
        results = _at_once([partial(store.add_likes, first), partial(store.add_likes, second)])
        assert not [r for r in results if isinstance(r, Exception)], results
        assert len(results[0]) + len(results[1]) == len(posts)  # one row per (post, user)
    assert len(_rows(store)) == 10 * len(posts)
