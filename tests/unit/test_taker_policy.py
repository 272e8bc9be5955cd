import pytest

from stack.taker.policy import classify_status, decide


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
