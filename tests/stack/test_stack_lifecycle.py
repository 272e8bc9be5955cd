"""Starting, restarting and stopping the stack; the broker going away under load."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import pytest

from stack import procs, supervisor
from stack.settings import StackSettings
from tests.conftest import stack_fixture
from tests.helpers import RunningStack, assert_all_gone, free_ports

stack = stack_fixture(retry_policy="classified", takers=1, taker_rate=0)


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
    }
    assert all(p["healthy"] and p["pid"] for p in parts.values())
    assert parts["gateway"]["url"] == stack.settings.gateway_url
    assert parts["webhook"]["url"] == stack.settings.webhook_url
    assert doc["admin_token_file"] == str(stack.settings.admin_token_file)
    assert f":{stack.settings.rabbit_password}@" not in doc["amqp_url"]
    assert ":***@" in doc["amqp_url"]


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
