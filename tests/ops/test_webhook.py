"""The webhook receiver, as a real process, against bad input, repeated deliveries and a
kill -9 mid-run.

Each test starts its own `likkerctl webhook serve` (own port, token, audit database) on the
operations stack. The probe runbook only reads: it samples a test queue and checks the
forecast, so what it "did" is visible in the audit log without changing anything.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from collections import Counter
from pathlib import Path

import pytest
import requests

from tests.alertmanager_payload import alert, body, notification
from tests.helpers import RunningStack, drain_ids, fill_queue, wait_for
from tests.ops.conftest import Cli, depth
from tests.ops.test_fleet import consumers
from tests.ops.webhook_proc import Webhook, webhook

# Slow on purpose (verify-forecast waits 2 s), so a second alert for the same target arrives
# while the first is running.
PROBE = """
max_runs_per_hour = {rate}

[runbooks.probe]
alerts = ["LikkerTestProbe"]
target = "probe {{labels[queue]}}"

[[runbooks.probe.steps]]
step = "verify-forecast"
settle_s = 2
timeout_s = 2.5
source = "sampler"

[[runbooks.probe.steps]]
step = "find-offenders"
when = "always"
queue = "{{labels[queue]}}"
sample = 20
if_none = "stop"
"""


@pytest.fixture
def hook(cli: Cli, tmp_path: Path, queues: tuple[str, str]) -> Webhook:
    with webhook(cli, tmp_path, PROBE.format(rate=3), "--mode", "enforce") as w:
        yield w  # type: ignore[misc]


def probe(queue: str, **kw: str) -> dict[str, object]:
    return alert("LikkerTestProbe", labels={"queue": queue}, **kw)


def key_of(a: dict[str, object]) -> str:
    from likkerctl.webhook.payload import parse

    return parse(body(a)).alerts[0].key


def test_bad_requests_are_refused_and_run_nothing(hook: Webhook, queues: tuple[str, str]) -> None:
    a = probe(queues[0])
    good = body(a)
    cases = {
        "no token": (hook.post(good, token=None), 401),
        "wrong token": (hook.post(good, token="x" * len(hook.token)), 401),
        "basic auth": (
            requests.post(f"{hook.url}/alerts", data=good, auth=("a", hook.token), timeout=10),
            401,
        ),
        "malformed JSON": (hook.post(good[:-5]), 400),
        "not Alertmanager's": (hook.post(json.dumps({"text": "disk full"}).encode()), 400),
        "Alertmanager v3": (
            hook.post(json.dumps({**notification(a), "version": "3"}).encode()),
            400,
        ),
        "10 MB": (hook.post(b" " * 10_000_000 + good), 413),
        "10 MB chunked": (hook.post(iter([good[:1]] + [b" " * 1_000_000] * 10)), 413),
    }
    for what, (resp, code) in cases.items():
        assert resp.status_code == code, (what, resp.text)
        assert set(resp.json()) == {"error", "detail"}, what
    assert cases["no token"][0].headers["WWW-Authenticate"] == "Bearer"
    assert (
        "version: this is not an Alertmanager v4" in cases["not Alertmanager's"][0].json()["detail"]
    )
    assert cases["malformed JSON"][0].json()["detail"].startswith("malformed JSON")
    # Nothing was recorded, nothing was run.
    assert hook.ledger() == [] and hook.audit() == []
    metrics = requests.get(f"{hook.url}/metrics", timeout=5).text
    assert 'likkerctl_webhook_requests_total{code="401"} 3.0' in metrics
    assert 'likkerctl_webhook_requests_total{code="413"} 2.0' in metrics


def test_the_same_alert_five_times_at_once_runs_once(
    hook: Webhook, queues: tuple[str, str]
) -> None:
    a = probe(queues[0])
    answers: list[requests.Response] = []
    start = threading.Barrier(5)

    def deliver() -> None:
        start.wait()
        answers.append(hook.post(body(a)))

    threads = [threading.Thread(target=deliver) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.status_code for r in answers] == [200] * 5
    actions = Counter(r.json()["alerts"][0]["action"] for r in answers)
    assert actions == {"queued": 1, "duplicate": 4}
    key = key_of(a)
    done = wait_for(lambda: hook.finished(key), 30, 0.3)
    assert done, hook.ledger(key)
    # And again later, after the run: still nothing new.
    assert hook.post(body(a)).json()["alerts"][0]["action"] == "duplicate"
    commands = Counter(e["command"] for e in hook.audit(key))
    assert commands == {"runbook probe": 1, "verify-forecast": 1, "find-offenders": 1}
    assert len(hook.ledger(key)) == 1


def test_resolved_is_recorded_and_runs_nothing(hook: Webhook, queues: tuple[str, str]) -> None:
    a = probe(queues[0], status="resolved")
    resp = hook.post(body(a))
    assert resp.json()["alerts"][0]["action"] == "recorded"
    [row] = hook.ledger(key_of(a))
    assert row["status"] == "resolved" and row["runbook"] is None
    assert hook.audit() == []


def test_an_alert_without_a_runbook_is_recorded_only(hook: Webhook) -> None:
    a = alert("SomethingElse")
    assert hook.post(body(a)).json()["alerts"][0]["action"] == "no runbook"
    assert hook.ledger(key_of(a))[0]["outcome"] == "no runbook"
    assert hook.audit() == []


def test_one_remediation_per_target_and_a_rate_limit(
    hook: Webhook, queues: tuple[str, str]
) -> None:
    src, dst = queues
    first, second, other = probe(src), probe(src), probe(dst)
    # One notification, three alerts: two for the same target, one for another.
    resp = hook.post(body(first, second, other))
    assert [x["action"] for x in resp.json()["alerts"]] == ["queued"] * 3
    keys = [key_of(x) for x in (first, second, other)]
    rows = [wait_for(lambda k=k: hook.finished(k), 30, 0.3) for k in keys]
    outcomes = sorted(r["outcome"] for r in rows[:2])
    assert outcomes == ["busy", "escalated"], rows
    busy = next(r for r in rows[:2] if r["outcome"] == "busy")
    assert busy["detail"]["target"] == f"probe {src}"
    assert rows[2]["outcome"] == "escalated"  # another target ran alongside
    # max_runs_per_hour = 3: two ran; one more may, the next is refused.
    third, fourth = probe(src), probe(src)
    hook.post(body(third))
    assert wait_for(lambda: hook.finished(key_of(third)), 30, 0.3)["outcome"] == "escalated"
    hook.post(body(fourth))
    limited = wait_for(lambda: hook.finished(key_of(fourth)), 30, 0.3)
    assert limited["outcome"] == "rate limited"
    assert not hook.audit(key_of(fourth))


def test_healthz_says_the_mode_and_runbooks(hook: Webhook) -> None:
    health = requests.get(f"{hook.url}/healthz", timeout=5).json()
    assert health["mode"] == "enforce" and health["runbooks"] == ["probe"]


def test_observe_is_the_default_and_records_dry_runs(
    cli: Cli, tmp_path: Path, queues: tuple[str, str]
) -> None:
    book = PROBE.format(rate=5).replace('step = "verify-forecast"', 'step = "takers pause"')
    book = book.replace('settle_s = 2\ntimeout_s = 2.5\nsource = "sampler"\n', "")
    with webhook(cli, tmp_path, book) as hook:
        assert requests.get(f"{hook.url}/healthz", timeout=5).json()["mode"] == "observe"
        a = probe(queues[0])
        hook.post(body(a))
        done = wait_for(lambda: hook.finished(key_of(a)), 30, 0.3)
        assert done["outcome"] == "observed", done
        rows = {e["command"]: e for e in hook.audit(key_of(a))}
        assert rows["takers pause"]["dry_run"] is True
        table = cli("audit", "--alert", key_of(a), env={"LIKKER_AUDIT_DB_URL": hook.audit_url})
        assert "takers pause (dry run)" in table.stdout
        assert "would: Pause 2 taker(s)" in table.stdout
        assert "offenders: none" in table.stdout and "outcome: observed" in table.stdout
    # The takers were not paused.
    status = cli("takers", "status", "--json")
    assert all(t["state"] == "running" for t in status.json["takers"]), status.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--mode", "yolo"), "--mode must be observe, enforce or approve"),
        (("--token-file", "/nonexistent/token"), "cannot read the webhook token"),
    ],
)
def test_serve_refuses_bad_settings(cli: Cli, args: tuple[str, ...], expected: str) -> None:
    run = cli("webhook", "serve", "--port", "1", *args)
    assert run.rc == 2 and expected in run.stderr


def test_check_names_a_bad_runbook_file(cli: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "rb.toml"
    bad.write_text("[runbooks.x]\n[[runbooks.x.steps]]\nstep = 'purge'\narchive = false\n")
    run = cli("webhook", "check", "--runbooks", str(bad))
    assert run.rc == 2 and "never purges without an archive" in run.stderr
    ok = cli("webhook", "check", "--json")
    assert ok.rc == 0 and "disk-full" in ok.json["runbooks"]


MOVE = """
[runbooks.move]
alerts = ["LikkerTestMove"]
target = "{src}"

[[runbooks.move.steps]]
step = "takers pause"

[[runbooks.move.steps]]
step = "shovel"
source = "{src}"
destination = "{dst}"
where = "bot = {bot}"
engine = "client"

[[runbooks.move.steps]]
step = "takers resume"
when = "always"

[[runbooks.move.steps]]
step = "escalate"
when = "escalated"
"""


def escalations(ops_stack: RunningStack, fingerprint: str) -> list[dict[str, object]]:
    """The pages about this alert in the stack's Alertmanager (where the webhook posts them)."""
    resp = requests.get(
        f"{ops_stack.settings.alertmanager_url}/api/v2/alerts",
        params={
            "filter": ['alertname="LikkerRunbookEscalated"', f'source_fingerprint="{fingerprint}"']
        },
        timeout=10,
    )
    resp.raise_for_status()
    return list(resp.json())


def test_a_remediation_killed_mid_move_is_recovered_at_restart_and_loses_nothing(
    cli: Cli, ops_stack: RunningStack, queues: tuple[str, str], tmp_path: Path
) -> None:
    src, dst = queues
    url = ops_stack.settings.amqp_url
    n, bot_id = 100_000, 77
    ids = fill_queue(url, src, n, bot_every=10, bot_id=bot_id, declare=False)
    a = alert("LikkerTestMove")
    key = key_of(a)
    book = MOVE.format(src=src, dst=dst, bot=bot_id)
    with webhook(cli, tmp_path, book, "--mode", "enforce") as hook:
        assert hook.post(body(a)).json()["alerts"][0]["action"] == "queued"
        assert wait_for(lambda: depth(ops_stack, dst) >= 1000, 60, 0.05)
        os.kill(hook.proc.pid, signal.SIGKILL)
        hook.proc.wait()
    first = depth(ops_stack, dst)
    assert first < n // 10, "the kill came too late to prove anything"
    # As the crash left it: running, the takers paused by the run.
    assert hook.ledger(key)[0]["outcome"] == "running"
    assert consumers(ops_stack) == 0
    assert escalations(ops_stack, a["fingerprint"]) == []
    # The restart recovers it before accepting alerts: interrupted, takers resumed, one page.
    with webhook(cli, tmp_path, book, "--mode", "enforce") as again:
        [row] = again.ledger(key)
        assert row["outcome"] == "interrupted", row
        assert row["detail"]["interrupted"]["where"] == (
            "its last finished step was step 1 (takers pause): ok; step 2 (shovel) did not finish"
        )
        assert [s["step"] for s in row["detail"]["recovery"]["steps"]] == [
            "takers resume",
            "escalate",
        ]
        assert consumers(ops_stack) == 2
        [page] = escalations(ops_stack, a["fingerprint"])
        assert page["labels"]["run"] == str(row["id"])
        assert (
            f"run {row['id']} was interrupted (the webhook died): its last finished step was "
            "step 1 (takers pause): ok" in page["annotations"]["summary"]
        )
        rows = again.audit(key)
        assert Counter(e["command"] for e in rows) == {
            "runbook move": 2,  # the run (interrupted) and its recovery
            "takers pause": 1,
            "shovel": 1,  # not run again
            "takers resume": 1,
            "escalate": 1,
        }
        results = {e["command"]: e["result"] for e in rows}
        assert results["shovel"] == "interrupted" and results["takers resume"] == "ok"
        # Alertmanager's repeat runs nothing.
        assert again.post(body(a)).json()["alerts"][0]["action"] == "duplicate"
    # A third start finds nothing to recover: the page was sent once.
    with webhook(cli, tmp_path, book, "--mode", "enforce") as third:
        assert third.ledger(key)[0]["outcome"] == "interrupted"
    assert len(escalations(ops_stack, a["fingerprint"])) == 1
    # The operator finishes the job with the same command; nothing was lost.
    run = cli("shovel", src, dst, "--where", f"bot={bot_id}", "--engine", "client", "--yes")
    assert run.rc == 0, run.stderr
    in_dst = Counter(drain_ids(url, dst))
    in_src = Counter(drain_ids(url, src))
    bot = {i for i, b in ids.items() if b == bot_id}
    assert set(in_dst) == bot
    assert set(in_src) == set(ids) - bot
    doubled = sum(c - 1 for c in in_dst.values()) + sum(c - 1 for c in in_src.values())
    assert doubled <= 2000, doubled  # at most the in-flight window (prefetch 2,000)
