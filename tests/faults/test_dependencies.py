"""Each dependency of the likes path failed on purpose, on real processes, counting likes
before and after: the likes service down and hung, auth down, the broker's own disk and
memory alarms. Every test restores what it broke (the stack is this module's own).

What they show (docs/STACK.md, "When a dependency fails"): an accepted like (202) is
stored exactly once in the end; a transient failure is retried with backoff a bounded number
of times, then waits in the DLQ as `retries-exhausted` until it is replayed; the gateway
answers 503 with `Retry-After` while it cannot accept a like durably.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from likkerctl.core import contract
from likkerctl.core.profile import load_profile
from likkerctl.tui.backend import LiveBackend
from likkerctl.tui.render import disk_text
from likkerctl.webhook.payload import parse
from stack import supervisor
from stack.load import Population
from tests.alertmanager_payload import alert, body
from tests.conftest import stack_fixture
from tests.helpers import RunningStack, wait_for
from tests.ops.conftest import Cli
from tests.ops.webhook_proc import webhook

MAX_RETRIES = 5
stack = stack_fixture(
    retry_policy="classified", takers=1, taker_rate=0, max_retries=MAX_RETRIES, taker_linger_ms=50
)


def _likes(stack: RunningStack, pairs: list[tuple[int, str]]) -> tuple[list[str], list[Any]]:
    """Like each (post, token) once: the request ids answered 202, and the other answers."""
    accepted, other = [], []
    for post, token in pairs:
        resp = stack.like(post, token)
        if resp.status_code == 202:
            accepted.append(resp.json()["request_id"])
        else:
            other.append(resp)
    return accepted, other


def _pairs(pop: Population, posts: slice) -> list[tuple[int, str]]:
    return [(post, user.token) for post in pop.posts[posts] for user in pop.users]


def _dead_letters(stack: RunningStack, ids: list[str]) -> dict[str, dict[str, Any]]:
    """The DLQ copies of these request ids: id -> headers (duplicates would show as fewer)."""
    wanted = set(ids)
    return {mid: h for mid, h in stack.dead_letters() if mid in wanted}


def _cli(stack: RunningStack, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIKKER_")}
    env |= {"LIKKER_STATE_DIR": str(stack.settings.state_dir), "XDG_CONFIG_HOME": str(tmp)}
    return subprocess.run(
        [sys.executable, "-m", "likkerctl", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def _replay_retries_exhausted(stack: RunningStack, tmp: Path) -> None:
    done = _cli(stack, tmp, "dlq", "replay", "--where", "reason=retries-exhausted", "--yes")
    assert done.returncode == 0, done.stderr


def _restart(stack: RunningStack) -> None:
    """`stack up` again: it starts exactly the parts that are not running."""
    supervisor.up(stack.settings)


def _transient(stack: RunningStack) -> int:
    """How many deliveries the (only) taker has seen fail transiently."""
    return int(stack.taker_state("taker-1")["failures"].get("transient", 0))


def _assert_503_retry_after(resp: Any) -> None:
    assert resp.status_code == 503, resp.text
    assert resp.headers["Retry-After"] == "5"
    assert resp.json()["error"] == "unavailable"


def test_likes_service_down_retries_with_backoff_then_dead_letters_and_replay_stores_once(
    stack: RunningStack, tmp_path: Path
) -> None:
    pop = stack.population(users=8, posts=4)
    tries_before = _transient(stack)
    stack.kill_9("likes", stack.settings.ports.likes)
    # The gateway knows the posts it created, so likes are still accepted: durable in the
    # broker, waiting for the store.
    accepted, refused = _likes(stack, _pairs(pop, slice(0, 4)))
    assert len(accepted) == 32 and not refused
    assert stack.stored(accepted) == {}
    # Each is tried MAX_RETRIES times (0.2 s backoff, doubling), then dead-lettered: bounded
    # redelivery, not the thousands per message of a requeue loop (DESIGN §1).
    assert wait_for(lambda: _transient(stack) - tries_before >= 32 * MAX_RETRIES, timeout=90)
    time.sleep(2)  # a hot loop would go on counting
    assert _transient(stack) - tries_before == 32 * MAX_RETRIES
    # The copies, read once.
    copies = _dead_letters(stack, accepted)
    assert len(copies) == 32
    for headers in copies.values():
        assert headers[contract.H_FAILURE] == "retries-exhausted"
        # (Its x-delivery-count is the DLQ's own now: the broker sets it on every delivery.)
    _restart(stack)
    _replay_retries_exhausted(stack, tmp_path)
    assert stack.wait_stored(accepted) == dict.fromkeys(accepted, 1)
    assert _dead_letters(stack, accepted) == {}
    counts = [
        stack.http.get(f"{stack.settings.likes_url}/v1/posts/{p}/likes", timeout=5).json()
        for p in pop.posts
    ]
    assert [c["count"] for c in counts] == [8, 8, 8, 8]


@contextmanager
def _stopped(pid: int) -> Iterator[None]:
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def test_a_hung_likes_service_times_out_and_each_like_is_stored_once_when_it_wakes(
    stack: RunningStack,
) -> None:
    pop = stack.population(users=5, posts=2)
    before = _transient(stack)
    with _stopped(stack.records()["likes"].pid):
        accepted, refused = _likes(stack, _pairs(pop, slice(0, 2)))
        assert len(accepted) == 10 and not refused
        # The taker's call times out (30 s read timeout): a transient failure, requeued.
        assert wait_for(lambda: _transient(stack) > before, timeout=60)
        assert stack.stored(accepted) == {}
    # Woken, the service finishes the call that timed out and answers the retry: the same
    # likes twice, stored once (request id and (post, user) are unique).
    assert stack.wait_stored(accepted) == dict.fromkeys(accepted, 1)
    assert _dead_letters(stack, accepted) == {}
    time.sleep(1)  # any straggling redelivery would land now
    assert stack.stored(accepted) == dict.fromkeys(accepted, 1)


def test_auth_down_503s_unknown_tokens_serves_cached_ones_then_recovers_storing_once(
    stack: RunningStack, tmp_path: Path
) -> None:
    pop = stack.population(users=6, posts=6)
    warm, refused = _likes(stack, _pairs(pop, slice(0, 2)))  # resolves and caches the tokens
    assert not refused and stack.wait_stored(warm) == dict.fromkeys(warm, 1)
    newcomer = stack.new_user()  # a token the gateway has never seen
    stack.kill_9("auth", stack.settings.ports.auth)

    # Unknown token: the gateway cannot tell who it is, so no like is taken.
    _assert_503_retry_after(stack.like(pop.posts[0], newcomer["token"]))
    # Cached tokens (at most the 30 s token cache) are still served: accepted, durable.
    during, refused = _likes(stack, _pairs(pop, slice(2, 6)))
    assert len(during) == 24 and not refused, [r.text for r in refused]
    # The likes service cannot check bans without auth: those likes are transient failures,
    # retried, then dead-lettered (unless the author's ban list was still in its 2 s cache).
    assert wait_for(
        lambda: len(stack.stored(during)) + len(_dead_letters(stack, during)) == 24, timeout=90
    )
    dead = _dead_letters(stack, during)
    assert dead and all(h[contract.H_FAILURE] == "retries-exhausted" for h in dead.values())
    # Once its cache entry expires (30 s after it was resolved), that token is unknown too:
    # 503, not a 401.
    assert wait_for(
        lambda: stack.like(pop.posts[0], pop.users[0].token).status_code == 503, timeout=45
    )
    _assert_503_retry_after(stack.like(pop.posts[0], pop.users[0].token))

    _restart(stack)
    late, refused = _likes(stack, [(pop.posts[0], newcomer["token"])])
    assert len(late) == 1 and not refused
    _replay_retries_exhausted(stack, tmp_path)
    every = warm + during + late
    assert stack.wait_stored(every) == dict.fromkeys(every, 1)
    assert _dead_letters(stack, every) == {}


def _gateway_connection_states(stack: RunningStack) -> set[str]:
    return {c.get("state", "?") for c in stack.mgmt("connections") or []}


@pytest.mark.parametrize(
    ("alarm", "raise_it", "clear_it"),
    [
        # A limit far above any disk's free space: the disk alarm, at once.
        ("disk", ("set_disk_free_limit", str(10**18)), ("set_disk_free_limit", "50000000")),
        # A watermark of 0: the memory alarm, at once (RabbitMQ's documented way to stop
        # all publishing); 0.4 is the default.
        ("memory", ("set_vm_memory_high_watermark", "0"), ("set_vm_memory_high_watermark", "0.4")),
    ],
)
def test_a_broker_alarm_blocks_publishers_the_gateway_503s_and_recovers_storing_each_once(
    stack: RunningStack, alarm: str, raise_it: tuple[str, str], clear_it: tuple[str, str]
) -> None:
    # Distinct (user, post) pairs for every request, so each 202 must become its own row:
    # 40 x 40 for the load (50/s for 25 s), 12 x 12 for the probes (one fresh pair each).
    pop = stack.population(users=40, posts=40)
    probes = iter(_pairs(stack.population(users=15, posts=15), slice(None)))
    background = stack.load_in_background(
        pop, scenario="normal", rate=50, duration_s=25, max_requests=1250
    )
    accepted: list[str] = []

    def probe() -> Any:
        """One like on a fresh pair: None if accepted (noted), else the answer."""
        resp = stack.like(*next(probes))
        if resp.status_code == 202:
            accepted.append(resp.json()["request_id"])
            return None
        return resp

    time.sleep(3)
    raised = time.monotonic()
    stack.rabbitmqctl(*raise_it)
    try:
        # The gateway answers 503 + Retry-After within a bounded time, and the broker says
        # it blocks publishers.
        # (Not wait_for: a requests.Response of a 503 is falsy.)
        deadline = time.monotonic() + 30
        while (answer := probe()) is None and time.monotonic() < deadline:
            time.sleep(0.2)
        blocked_after = time.monotonic() - raised
        _assert_503_retry_after(answer)
        # Said by the broker's connection.blocked, not found out at the confirm timeout
        # (a like in flight as the alarm went off waited 5 s for its 503 before).
        assert "blocking publishers" in answer.json()["detail"], answer.json()
        assert wait_for(lambda: "blocked" in _gateway_connection_states(stack), timeout=30)
        assert stack.gateway_broker() == "blocked"
        print(f"{alarm} alarm: gateway 503 after {blocked_after:.2f}s, {len(accepted)} probes 202")
    finally:
        stack.rabbitmqctl(*clear_it)
    cleared = time.monotonic()

    # Recovers by itself: accepted again once the alarm clears.
    assert wait_for(lambda: probe() is None, timeout=20, interval=0.2)
    print(f"{alarm} alarm cleared: 202 again after {time.monotonic() - cleared:.2f}s")
    report = background()
    assert report.statuses["202"] > 0 and report.statuses["503"] > 0, report.as_json()
    assert set(report.statuses) <= {"202", "503"}, report.as_json()
    every = accepted + report.accepted["user"]
    assert stack.wait_stored(every) == dict.fromkeys(every, 1)


def test_prometheus_down_forecast_and_dashboard_fall_back_to_the_sampler_and_say_so(
    stack: RunningStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pop = stack.population(users=4, posts=3)
    prometheus = stack.settings.prometheus_url
    stack.kill_9("prometheus", stack.settings.ports.prometheus)
    try:
        accepted, refused = _likes(stack, _pairs(pop, slice(None)))  # likes do not need it
        assert len(accepted) == 12 and not refused
        done = _cli(stack, tmp_path, "forecast", "--json")  # bounded: the call's timeout
        assert done.returncode == 0, done.stderr
        answer = json.loads(done.stdout)
        assert answer["source"] == "sampler"
        assert answer["fallback_reason"].startswith(f"Prometheus at {prometheus} did not answer")
        # The dashboard's disk panel, from the same reading it refreshes with.
        monkeypatch.setenv("LIKKER_STATE_DIR", str(stack.settings.state_dir))
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
        backend = LiveBackend(load_profile())
        reading = backend.fetch("forecast")
        assert reading["source"] == "sampler"
        panel = disk_text(backend.fetch("nodes"), reading).plain
        assert f"Prometheus at {prometheus} did not answer" in panel
        assert "sampler instead" in panel
    finally:
        _restart(stack)
    done = _cli(stack, tmp_path, "forecast", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["source"] == "prometheus"
    assert stack.wait_stored(accepted) == dict.fromkeys(accepted, 1)


def key_of(a: dict[str, Any]) -> str:
    return parse(body(a)).alerts[0].key


PAGE = """
[runbooks.page]
alerts = ["LikkerFaultPage"]
target = "page {labels[alertname]}"

[[runbooks.page.steps]]
step = "escalate"
"""


def test_alertmanager_down_the_webhook_records_the_failed_page_and_status_says_unreachable(
    stack: RunningStack, tmp_path: Path
) -> None:
    pop = stack.population(users=3, posts=2)
    stack.kill_9("alertmanager", stack.settings.ports.alertmanager)
    try:
        accepted, refused = _likes(stack, _pairs(pop, slice(None)))
        assert len(accepted) == 6 and not refused
        done = _cli(stack, tmp_path, "status", "--json")
        assert done.returncode == 0, done.stderr
        seen = json.loads(done.stdout)["alertmanager"]
        assert "unreachable" in seen["error"].lower(), seen
        cli = Cli(stack, tmp_path)
        (tmp_path / "hook").mkdir()
        with webhook(cli, tmp_path / "hook", PAGE, "--mode", "enforce") as hook:
            page = alert("LikkerFaultPage")
            resp = hook.post(body(page))
            assert resp.status_code == 200, resp.text
            row = wait_for(lambda: hook.finished(key_of(page)), timeout=60)
            assert row, hook.ledger()
            assert row["outcome"] == "failed", row
            [step] = [e for e in hook.audit(key_of(page)) if e["command"] == "escalate"]
            assert step["result"] == "failed", step
            assert "Alertmanager unreachable" in json.dumps(step), step
    finally:
        _restart(stack)
    done = _cli(stack, tmp_path, "status", "--json")
    assert "error" not in json.loads(done.stdout)["alertmanager"]
    assert stack.wait_stored(accepted) == dict.fromkeys(accepted, 1)
