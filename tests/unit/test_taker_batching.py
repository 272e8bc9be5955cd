import json
from datetime import UTC, datetime

from likkerctl.core import contract
from stack.likes.limits import MAX_LIKE_BYTES
from stack.taker.batching import Batch, Pacer
from stack.taker.main import batch_item


def test_a_batch_is_due_when_full_or_when_its_first_message_has_lingered() -> None:
    batch: Batch[int] = Batch(limit=3, linger_s=0.02, max_bytes=1000)
    assert not batch.due(0.0) and batch.wait_s(0.0, idle_s=0.5) == 0.5
    batch.add(1, 10, now=10.0)
    batch.add(2, 10, now=10.015)
    assert not batch.due(10.015)
    assert abs(batch.wait_s(10.015, idle_s=0.5) - 0.005) < 1e-9
    assert batch.due(10.021)
    batch.add(3, 10, now=10.016)
    assert batch.full and batch.due(10.016)
    assert batch.take() == [1, 2, 3]
    assert len(batch) == 0 and batch.size_bytes == 0 and not batch.due(99.0)


def test_the_linger_runs_from_the_first_message_not_the_last() -> None:
    batch: Batch[int] = Batch(limit=100, linger_s=0.02, max_bytes=10**6)
    batch.add(1, 1, now=0.0)
    batch.add(2, 1, now=0.019)
    assert batch.due(0.021) and not batch.due(0.019)


def test_a_message_that_would_overflow_the_byte_bound_waits_for_the_next_batch() -> None:
    batch: Batch[str] = Batch(limit=100, linger_s=1.0, max_bytes=100)
    batch.add("a", 60, now=0.0)
    assert batch.fits(40) and not batch.fits(41)
    assert Batch(limit=1, linger_s=0, max_bytes=10).fits(10**6)  # alone, anything goes


def test_pacing_books_each_batch_its_share_of_the_rate() -> None:
    pacer = Pacer(rate=100.0)
    assert pacer.delay(10, now=0.0) == 0.0  # 10 messages take 0.1 s of the budget
    assert abs(pacer.delay(10, now=0.05) - 0.05) < 1e-9  # waits for the rest of it
    assert abs(pacer.delay(50, now=0.1) - 0.1) < 1e-9
    assert pacer.delay(1, now=10.0) == 0.0  # idle time is not saved up for a burst
    assert Pacer(rate=0).delay(1000, now=0.0) == 0.0


def test_a_contract_body_goes_into_the_batch_verbatim_with_its_receipt_time() -> None:
    msg = contract.new_like(5, contract.Actor(1))
    item, received = batch_item(msg.body())
    assert item == msg.body()
    assert received == datetime.fromisoformat(msg.received_at).timestamp()
    assert abs(received - datetime.now(UTC).timestamp()) < 5


def test_a_body_that_is_not_json_goes_as_a_string_for_the_service_to_judge() -> None:
    item, received = batch_item(b"{not json \xff")
    assert item is not None and received is None
    assert json.loads(item) == "{not json \ufffd"
    assert batch_item(b'{"received_at": 5}') == (b'{"received_at": 5}', None)


def test_a_body_too_large_for_the_service_is_not_sent() -> None:
    assert batch_item(b" " * (MAX_LIKE_BYTES + 1)) == (None, None)
