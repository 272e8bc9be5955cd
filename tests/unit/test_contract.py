import json
import uuid

import pytest

from likkerctl.core import contract

# A fixed request id: parametrize ids are built from the bodies, and pytest-xdist's workers
# must collect the same ids.
RID = "5f0c1a52-6d1e-4c3b-9a7e-0b1c2d3e4f50"


def test_new_like_carries_headers_for_routing_without_x_prefix() -> None:
    msg = contract.new_like(12, contract.Actor(7, 42))
    headers = msg.headers()
    assert headers == {
        "likker-action": "like",
        "likker-user": 7,
        "likker-bot": 42,
        "likker-post": 12,
    }
    assert not any(h.startswith("x-") for h in headers)
    props = msg.properties()
    assert props.message_id == msg.request_id
    assert props.delivery_mode == 2
    assert props.content_type == "application/json"


def test_human_likes_have_no_bot_header_and_null_bot_in_body() -> None:
    msg = contract.new_like(1, contract.Actor(3))
    assert "likker-bot" not in msg.headers()
    assert json.loads(msg.body())["actor"] == {"user_id": 3, "bot_id": None}


def test_parse_round_trips() -> None:
    msg = contract.new_like(5, contract.Actor(1, 2))
    assert contract.parse_like(msg.body()) == msg


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        (b"not json", "not JSON"),
        (b"[1]", "not a JSON object"),
        (b'{"post_id": 1}', "missing field"),
        (
            json.dumps({"request_id": "nope", "post_id": 1, "actor": {"user_id": 1}}).encode(),
            "UUID",
        ),
        (
            json.dumps({"request_id": RID, "post_id": "1", "actor": {"user_id": 1}}).encode(),
            "post_id must be an integer",
        ),
        (
            json.dumps({"request_id": RID, "post_id": 1, "actor": {"user_id": True}}).encode(),
            "user_id must be an integer",
        ),
        (
            json.dumps(
                {
                    "request_id": RID,
                    "post_id": 1,
                    "actor": {"user_id": 1, "bot_id": "x"},
                }
            ).encode(),
            "bot_id",
        ),
        (
            json.dumps(
                {
                    "request_id": RID,
                    "post_id": 1,
                    "action": "share",
                    "actor": {"user_id": 1},
                }
            ).encode(),
            "unknown action",
        ),
    ],
)
def test_parse_rejects_bad_bodies_saying_why(body: bytes, complaint: str) -> None:
    with pytest.raises(contract.ContractError, match=complaint):
        contract.parse_like(body)


@pytest.mark.parametrize("field", ["post_id", "user_id", "bot_id"])
def test_parse_rejects_ids_beyond_json_safe_integers(field: str) -> None:
    data = {"request_id": str(uuid.uuid4()), "post_id": 1, "actor": {"user_id": 1, "bot_id": 2}}
    target = data if field == "post_id" else data["actor"]
    target[field] = 2**53  # type: ignore[index]
    with pytest.raises(contract.ContractError, match=rf"{field} is beyond 2\*\*53 - 1"):
        contract.parse_like_data(data)
    target[field] = 2**53 - 1  # type: ignore[index]
    assert contract.parse_like_data(data).request_id == data["request_id"]
