"""Record the management-API and auth-service answers that likkerctl reads, from a real stack.

    .venv/bin/python -m tests.cli.record tests/cli/recordings

Starts a stack on free ports in a temp state dir (tests.helpers.start_stack) with the legacy
`requeue` retry policy and slow takers, replays the Friday incident through the gateway
(a banned user's bot whose likes cycle through nack-requeue), dead-letters a few hundred
contract-shaped likes, creates a second bot and blocks it, then GETs each path likkerctl
reads — with the query parameters likkerctl sends — and writes one JSON file per path and
`index.json` (path → file; the error answers by kind). The stack is stopped by pid at the
end, whatever happens.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from likkerctl.core import contract
from likkerctl.core.clients import rabbit
from tests.helpers import RunningStack, assert_all_gone, fill_queue, start_stack, wait_for

VHOST = rabbit.q("/")
QUEUES_WITH_RATES = {
    f"/api/queues/{VHOST}",
    f"/api/queues/{VHOST}/{rabbit.q(contract.ACTIONS_QUEUE)}",
    f"/api/queues/{VHOST}/{rabbit.q(contract.DLQ_QUEUE)}",
}
MGMT_PATHS = [
    "/api/overview",
    "/api/nodes",
    *sorted(QUEUES_WITH_RATES),
    f"/api/exchanges/{VHOST}",
    f"/api/exchanges/{VHOST}/{rabbit.q(contract.CONTROL_EXCHANGE)}",
    f"/api/exchanges/{VHOST}/{rabbit.q(contract.CONTROL_EXCHANGE)}/bindings/source",
]
UNKNOWN_QUEUE = "no.such.queue"
UNKNOWN_BOT = 999_999


def file_name(path: str) -> str:
    """`/api/queues/%2F/likker.actions` → `api_queues_default-vhost_likker.actions.json`."""
    return path.strip("/").replace(VHOST, "default-vhost").replace("/", "_") + ".json"


def answer(resp: requests.Response) -> dict[str, Any]:
    return {"status": resp.status_code, "body": resp.json()}


def make_traffic(stack: RunningStack) -> dict[str, Any]:
    """The Friday incident, dead letters, and a second bot that is blocked."""
    pop = stack.population(users=30, posts=20, friday=True)
    assert pop.bot is not None and pop.bot.bot_id is not None
    join = stack.load_in_background(pop, scenario="friday", rate=100, duration_s=30, bot_share=0.3)
    fill_queue(
        stack.settings.amqp_url,
        contract.DLQ_QUEUE,
        300,
        bot_every=3,
        bot_id=pop.bot.bot_id,
        declare=False,
    )
    owner = stack.new_user()
    spare = stack.new_bot(owner["user_id"], "spare-bot")
    resp = stack.http.post(
        f"{stack.settings.auth_url}/v1/bots/{spare['bot_id']}/block",
        headers=stack.admin,
        json={"reason": "recorded as blocked"},
        timeout=5,
    )
    resp.raise_for_status()
    # Record while the load runs, its 30 s rate window (RATE_WINDOW) nearly full: publish,
    # deliver, ack and redeliver rates all non-zero.
    time.sleep(24)
    return {
        "join": join,
        "bots": [pop.bot.bot_id, spare["bot_id"]],
        "friday_bot": pop.bot.bot_id,
        "blocked_bot": spare["bot_id"],
    }


def record(stack: RunningStack, out: Path, traffic: dict[str, Any]) -> dict[str, Any]:
    s = stack.settings
    http = requests.Session()
    mgmt_auth = (s.rabbit_user, s.rabbit_password)
    paths: dict[str, str] = {}
    for path in MGMT_PATHS:
        params = rabbit.RATE_WINDOW if path in QUEUES_WITH_RATES else None
        resp = http.get(f"{s.management_url}{path}", params=params, auth=mgmt_auth, timeout=10)
        resp.raise_for_status()
        paths[path] = write(out, path, resp.json())
    for path in ["/v1/bots", *(f"/v1/bots/{b}" for b in traffic["bots"])]:
        resp = http.get(f"{s.auth_url}{path}", headers=stack.admin, timeout=10)
        resp.raise_for_status()
        paths[path] = write(out, path, resp.json())

    # The servers' own error answers, so the replay answers as they do.
    errors = {
        "mgmt_not_found": answer(
            http.get(
                f"{s.management_url}/api/queues/{VHOST}/{UNKNOWN_QUEUE}",
                params=rabbit.RATE_WINDOW,
                auth=mgmt_auth,
                timeout=10,
            )
        ),
        "mgmt_unauthorized": answer(
            http.get(f"{s.management_url}/api/overview", auth=("guest", "wrong"), timeout=10)
        ),
        "auth_not_found": answer(
            http.get(f"{s.auth_url}/v1/bots/{UNKNOWN_BOT}", headers=stack.admin, timeout=10)
        ),
        "auth_unauthorized": answer(http.get(f"{s.auth_url}/v1/bots", timeout=10)),
        # A user's token (an unknown one is 401, like none).
        "auth_forbidden": answer(
            http.get(
                f"{s.auth_url}/v1/bots",
                headers={"Authorization": f"Bearer {stack.new_user()['token']}"},
                timeout=10,
            )
        ),
    }
    expected = {
        "mgmt_not_found": 404,
        "mgmt_unauthorized": 401,
        "auth_not_found": 404,
        "auth_unauthorized": 401,
        "auth_forbidden": 403,
    }
    for kind, status in expected.items():
        assert errors[kind]["status"] == status, (kind, errors[kind])
    (out / "errors.json").write_text(json.dumps(errors, indent=1) + "\n")

    overview = json.loads((out / paths["/api/overview"]).read_text())
    index = {
        "recorded": {
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "by": "tests/cli/record.py",
            "rabbitmq_version": overview.get("rabbitmq_version"),
            "management_url": s.management_url,
            "auth_url": s.auth_url,
            "query_sent_for": {p: rabbit.RATE_WINDOW for p in sorted(QUEUES_WITH_RATES)},
            "unknown_queue": UNKNOWN_QUEUE,
            "unknown_bot": UNKNOWN_BOT,
            "friday_bot": traffic["friday_bot"],
            "blocked_bot": traffic["blocked_bot"],
        },
        "paths": paths,
        "errors": "errors.json",
    }
    (out / "index.json").write_text(json.dumps(index, indent=1) + "\n")
    return index


def write(out: Path, path: str, body: Any) -> str:
    name = file_name(path)
    (out / name).write_text(json.dumps(body, indent=1, sort_keys=True) + "\n")
    return name


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.json"):  # a new recording replaces the old one (README.md stays)
        stale.unlink()
    with tempfile.TemporaryDirectory(prefix="likker-record-") as tmp:
        print(f"starting a stack in {tmp} ...", file=sys.stderr)
        stack = start_stack(Path(tmp), retry_policy="requeue", takers=2, taker_rate=40)
        try:
            traffic = make_traffic(stack)
            ok = wait_for(lambda: stack.queue(contract.ACTIONS_QUEUE).get("messages"), 20)
            assert ok, "the actions queue stayed empty"
            index = record(stack, out, traffic)
            traffic["join"]()
            # Stop the bot's cycling before the stack goes (as tests/stack do).
            stack.purge(contract.ACTIONS_QUEUE)
        finally:
            assert_all_gone(stack.down())
    total = sum(f.stat().st_size for f in out.glob("*.json"))
    print(
        f"recorded {len(index['paths'])} paths (RabbitMQ {index['recorded']['rabbitmq_version']}) "
        f"into {out}: {total / 1000:.0f} kB; friday bot {traffic['friday_bot']}, "
        f"blocked bot {traffic['blocked_bot']}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
