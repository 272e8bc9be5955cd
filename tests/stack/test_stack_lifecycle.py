"""Starting, restarting and stopping the stack; the broker going away under load; takers,
the likes service and the broker dying while a batch is being stored."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest
from sqlalchemy import text

from stack import procs, supervisor
from stack.db import make_engine
from stack.load import Population
from stack.settings import StackSettings
from tests.conftest import stack_fixture
from tests.helpers import RunningStack, assert_all_gone, free_ports, wait_for

# Restarting the likes service takes longer than the default five deliveries' backoff
# (~3 s): retry until it is back, so a like here can only end stored (or lost), never parked
# in the DLQ as retries-exhausted.
# On SQLite, and on a PostgreSQL server of the stack's own (`--db postgresql`): a part that
# is started, killed with the others and stopped by pid like them.
stack = stack_fixture(
    retry_policy="classified",
    takers=1,
    taker_rate=0,
    max_retries=1000,
    databases=("sqlite", "private-postgresql"),
)


def test_status_json_lists_every_part_with_pid_url_and_health(stack: RunningStack) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "likkerctl",
            "stack",
            "status",
            "--json",
            "--state-dir",
            str(stack.settings.state_dir),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    parts = {p["part"]: p for p in doc["parts"]}
    assert set(parts) == {
        "epmd",
        "rabbitmq",
        "prometheus",
        "alertmanager",
        "auth",
        "likes",
        "gateway",
        "taker-1",
        "webhook",
    } | ({"postgres"} if stack.settings.runs_postgres else set())
    assert all(p["healthy"] and p["pid"] for p in parts.values())
    assert parts["gateway"]["url"] == stack.settings.gateway_url
    assert parts["webhook"]["url"] == stack.settings.webhook_url
    assert doc["admin_token_file"] == str(stack.settings.admin_token_file)
    assert f":{stack.settings.rabbit_password}@" not in doc["amqp_url"]
    assert ":***@" in doc["amqp_url"]


def test_likkerctl_audits_into_the_stacks_own_database(stack: RunningStack) -> None:
    """The local profile follows the stack's stores: with its own PostgreSQL, likkerctl's
    audit log is a table in the server's `likkerctl` database, not a file in the state dir."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIKKER_")}
    env["LIKKER_STATE_DIR"] = str(stack.settings.state_dir)
    env["XDG_CONFIG_HOME"] = str(stack.settings.state_dir / "no-config")  # no profiles of ours
    for command in (["takers", "pause", "--yes"], ["takers", "resume", "--yes"]):
        done = subprocess.run(
            [sys.executable, "-m", "likkerctl", *command, "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
    engine = make_engine(stack.settings.audit_store_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT command, result FROM audit ORDER BY id DESC LIMIT 2")
            ).all()
    finally:
        engine.dispose()
    assert [tuple(r) for r in rows] == [("takers resume", "ok"), ("takers pause", "ok")]
    sqlite_file = stack.settings.state_dir / "likkerctl.db"
    assert sqlite_file.exists() == (stack.settings.db == "sqlite")


def test_up_twice_is_harmless(stack: RunningStack) -> None:
    before = {name: rec.pid for name, rec in stack.records().items()}
    _settings, rows = supervisor.up(stack.settings)
    assert {name: rec.pid for name, rec in stack.records().items()} == before
    assert all(r["healthy"] for r in rows)


def test_port_in_use_is_a_clear_error_naming_port_and_part(tmp_path) -> None:  # type: ignore[no-untyped-def]
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    ports = free_ports()
    ports.gateway = port
    settings = StackSettings(state_dir=tmp_path / "s", ports=ports, takers=1)
    try:
        with pytest.raises(supervisor.PortInUse) as info:
            supervisor.up(settings)
    finally:
        blocker.close()
    assert info.value.part == "gateway" and info.value.port == port
    assert str(port) in str(info.value) and "gateway" in str(info.value)
    assert procs.load_records(settings.pid_dir) == {}  # nothing was started


def test_broker_stopped_under_load_503s_and_every_202_is_stored_once(
    stack: RunningStack,
) -> None:
    pop = stack.population(users=40, posts=60)
    join = stack.load_in_background(pop, scenario="normal", rate=150, duration_s=16, concurrency=32)
    time.sleep(3)
    broker = stack.records()["rabbitmq"]
    procs.stop(broker, timeout=60)
    assert not broker.is_running()
    time.sleep(2)  # the gateway answers 503 while the broker is down
    supervisor.up(stack.settings)  # starts only the missing broker
    report = join()
    assert report.statuses["503"] > 0, report.as_json()
    assert not report.errors, report.as_json()
    assert set(report.statuses) <= {"202", "503"}, report.as_json()
    accepted = report.accepted["user"]
    assert len(accepted) > 300
    stored = stack.wait_stored(accepted, timeout=120)
    assert len(stored) == len(accepted), f"{len(accepted) - len(stored)} accepted likes lost"
    assert set(stored.values()) == {1}


def _accepted_while_a_batch_is_in_the_store(stack: RunningStack, pop: Population) -> list[str]:
    """Send likes while the caller holds the store's write lock: return the accepted ids
    once the taker's batch waits inside the likes service's transaction."""
    # A test before may have restarted the broker: the gateway reconnects with a backoff of
    # up to 5 s (more under load), and until then every like is a 503.
    assert wait_for(lambda: stack.gateway_broker() == "connected", timeout=30)
    report = stack.load(pop, scenario="normal", rate=200, duration_s=1.5)
    accepted = report.accepted["user"]
    assert len(accepted) == report.sent > 200, report.as_json()
    assert wait_for(lambda: stack.taker_state("taker-1")["storing"] > 0, timeout=10)
    assert stack.stored(accepted) == {}  # the batch is stuck in the store, as meant
    return accepted


def _assert_stored_once_and_drained(stack: RunningStack, accepted: list[str]) -> None:
    stored = stack.wait_stored(accepted, timeout=120)
    assert len(stored) == len(accepted), f"{len(accepted) - len(stored)} accepted likes lost"
    assert set(stored.values()) == {1}
    assert wait_for(lambda: stack.held_and_ready() == 0, timeout=30)
    assert not {m for m, _ in stack.dead_letters()} & set(accepted)


def test_taker_killed_mid_batch_its_batch_commits_and_redelivery_is_a_duplicate(
    stack: RunningStack,
) -> None:
    duplicates = stack.likes_metric("likker_likes_outcomes_total", outcome="duplicate")
    pop = stack.population(users=20, posts=20)  # posts are writes: before the lock
    with stack.store_write_locked():
        accepted = _accepted_while_a_batch_is_in_the_store(stack, pop)
        stack.kill_9("taker-1", stack.settings.taker_port(1))
    # The lock is gone: the dead taker's batch commits, its answer goes nowhere, and the
    # broker gives its unacked messages to the restarted taker.
    supervisor.up(stack.settings)
    _assert_stored_once_and_drained(stack, accepted)
    assert stack.likes_metric("likker_likes_outcomes_total", outcome="duplicate") > duplicates


def test_likes_service_killed_mid_transaction_stores_nothing_then_everything_once(
    stack: RunningStack,
) -> None:
    pop = stack.population(users=20, posts=20)  # posts are writes: before the lock
    with stack.store_write_locked():
        accepted = _accepted_while_a_batch_is_in_the_store(stack, pop)
        stack.kill_9("likes", stack.settings.ports.likes)
    assert stack.stored(accepted) == {}  # the killed transaction left nothing behind
    supervisor.up(stack.settings)  # the likes service only; the taker has been retrying
    _assert_stored_once_and_drained(stack, accepted)


def test_broker_restarted_while_a_batch_is_stored_every_like_is_stored_once(
    stack: RunningStack,
) -> None:
    broker = stack.records()["rabbitmq"]
    pop = stack.population(users=20, posts=20)  # posts are writes: before the lock
    with stack.store_write_locked():
        accepted = _accepted_while_a_batch_is_in_the_store(stack, pop)
        procs.stop(broker, timeout=60)
        assert not broker.is_running()
    # The batch commits; the taker cannot ack it (its connection died with the broker).
    supervisor.up(stack.settings)
    assert wait_for(lambda: stack.taker_state("taker-1")["connected"], timeout=30)
    _assert_stored_once_and_drained(stack, accepted)


def test_stack_down_leaves_no_process_of_ours_running(stack: RunningStack) -> None:
    pids = stack.all_pids()
    assert len(pids) >= 8
    stopped = supervisor.down(stack.settings.state_dir)
    assert set(stopped) >= {"rabbitmq", "gateway", "taker-1", "epmd"}
    assert_all_gone(pids)
    assert procs.load_records(stack.settings.pid_dir) == {}
    assert (stack.settings.state_dir / "rabbitmq" / "data").exists()  # data kept without --wipe


def test_down_wipe_from_the_cli_deletes_the_state(stack: RunningStack) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "likkerctl",
            "stack",
            "down",
            "--wipe",
            "--json",
            "--state-dir",
            str(stack.settings.state_dir),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["wiped"] is True
    assert not stack.settings.state_dir.exists()
