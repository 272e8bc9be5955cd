import pytest

from stack.taker.policy import batch_outcomes, classify_status, decide


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (201, "stored"),
        (200, "duplicate"),
        (403, "forbidden"),
        (404, "not-found"),
        (400, "invalid"),
        (422, "invalid"),
        (500, "transient"),
        (503, "transient"),
        (429, "transient"),
        (None, "transient"),
    ],
)
def test_classify_status(status: int | None, kind: str) -> None:
    assert classify_status(status) == kind


def _decide(policy: str, kind: str, count: int = 0):  # type: ignore[no-untyped-def]
    return decide(
        policy,
        kind,
        delivery_count=count,
        max_retries=5,  # type: ignore[arg-type]
        backoff_s=0.2,
        backoff_max_s=1.0,
    )


def test_requeue_policy_requeues_every_failure_forever() -> None:
    for kind in ("forbidden", "not-found", "invalid", "transient"):
        assert _decide("requeue", kind, count=10_000).verb == "requeue"


def test_success_is_acked_under_both_policies() -> None:
    for policy in ("requeue", "classified"):
        assert _decide(policy, "stored").verb == "ack"
        assert _decide(policy, "duplicate").verb == "ack"


@pytest.mark.parametrize("kind", ["forbidden", "not-found", "invalid"])
def test_classified_dead_letters_permanent_failures_at_once_with_reason(kind: str) -> None:
    decision = _decide("classified", kind)
    assert (decision.verb, decision.reason) == ("dead-letter", kind)


def test_classified_retries_transient_with_growing_capped_backoff_then_gives_up() -> None:
    backoffs = [_decide("classified", "transient", count=c).backoff_s for c in range(4)]
    assert backoffs == [0.2, 0.4, 0.8, 1.0]
    assert _decide("classified", "transient", count=3).verb == "requeue"
    final = _decide("classified", "transient", count=4)
    assert (final.verb, final.reason) == ("dead-letter", "retries-exhausted")


def _answer(*statuses: int) -> dict:  # type: ignore[type-arg]
    return {"results": [{"status": s, "detail": f"why {s}"} for s in statuses]}


def test_a_mixed_batch_answer_decides_each_message_on_its_own_outcome() -> None:
    kinds = batch_outcomes(200, _answer(201, 200, 403, 404, 400, 503), 6)
    assert [k for k, _ in kinds] == [
        "stored",
        "duplicate",
        "forbidden",
        "not-found",
        "invalid",
        "transient",
    ]
    assert kinds[2] == ("forbidden", "why 403")
    classified = [_decide("classified", k).verb for k, _ in kinds]
    assert classified == ["ack", "ack", "dead-letter", "dead-letter", "dead-letter", "requeue"]
    requeue = [_decide("requeue", k).verb for k, _ in kinds]
    assert requeue == ["ack", "ack", "requeue", "requeue", "requeue", "requeue"]


@pytest.mark.parametrize(
    ("status", "payload"),
    [
        (503, {"error": "store-unavailable", "detail": "database is locked"}),
        (413, {"error": "too-large", "detail": "1001 likes"}),
        (200, {"results": [{"status": 201}]}),  # one result for two messages
        (200, {"results": "nope"}),
        (200, None),  # not JSON
    ],
)
def test_a_failed_or_malformed_batch_answer_makes_every_message_transient(
    status: int, payload: object
) -> None:
    kinds = batch_outcomes(status, payload, 2)
    assert [k for k, _ in kinds] == ["transient", "transient"]
    if isinstance(payload, dict) and "detail" in payload:
        assert payload["detail"] in kinds[0][1]


def test_an_item_without_a_usable_status_is_transient_never_acked() -> None:
    kinds = batch_outcomes(200, {"results": [{}, {"status": "201"}, 7]}, 3)
    assert [k for k, _ in kinds] == ["transient"] * 3


def test_transient_messages_of_one_batch_keep_their_own_delivery_counts() -> None:
    decisions = [_decide("classified", "transient", count=c) for c in (0, 2, 4)]
    assert [d.verb for d in decisions] == ["requeue", "requeue", "dead-letter"]
    assert [d.backoff_s for d in decisions[:2]] == [0.2, 0.8]
