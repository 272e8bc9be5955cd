"""A part's pid file and a webhook run's owner name a process by pid and start time; a
wall-clock step (NTP, a VM resumed) moves the start time psutil reports on Linux, and must
not make a live process look like someone else's (seen here: a 16 s step mid-soak left the
stack's every part "not running", so `stack down` waited 15 s on each, then SIGKILLed it).

The step is replayed on the record's side: a record taken before a +16 s step reads, after
it, exactly like one whose both stamps are 16 s earlier.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import psutil
import pytest

from likkerctl.core.contract.process import Start, same_start
from likkerctl.webhook.ledger import owner_alive, this_process
from stack import procs

STEP_S = 16.0


@pytest.fixture
def sleeper(tmp_path: Path):  # type: ignore[no-untyped-def]
    rec = procs.spawn(
        "sleeper",
        [sys.executable, "-c", "import time; time.sleep(120)"],
        log_path=tmp_path / "sleeper.log",
        pid_dir=tmp_path / "pids",
    )
    yield rec
    procs.stop(rec, timeout=5)
    assert not psutil.pid_exists(rec.pid) or psutil.Process(rec.pid).status() == "zombie"


def test_a_part_is_still_ours_after_the_wall_clock_is_stepped(sleeper: procs.ProcRecord) -> None:
    assert sleeper.boot_time is not None
    stepped = dataclasses.replace(
        sleeper, create_time=sleeper.create_time - STEP_S, boot_time=sleeper.boot_time - STEP_S
    )
    assert stepped.is_running()
    # Found running, so it is sent SIGTERM at once (before: "not ours", a 15 s wait, SIGKILL).
    assert procs.stop(stepped, timeout=5) is True
    assert not stepped.is_running()


def test_a_recycled_pid_is_still_not_ours(sleeper: procs.ProcRecord) -> None:
    # Started 16 s apart by the clock since boot: another process that got the same pid.
    other = dataclasses.replace(sleeper, create_time=sleeper.create_time - STEP_S)
    assert not other.is_running()
    assert procs.stop(other, timeout=0.5) is False


def test_a_pid_file_written_before_boot_times_were_recorded_is_read_as_before(
    sleeper: procs.ProcRecord, tmp_path: Path
) -> None:
    path = tmp_path / "pids" / "sleeper.json"
    old = path.read_text().replace(f', "boot_time": {sleeper.boot_time}', "")
    assert "boot_time" not in old
    path.write_text(old)
    rec = procs.load_records(tmp_path / "pids")["sleeper"]
    assert rec.boot_time is None and rec.is_running()
    assert not dataclasses.replace(rec, create_time=rec.create_time - STEP_S).is_running()


def test_a_webhook_run_owner_is_alive_across_a_clock_step_and_dead_when_recycled() -> None:
    me = this_process()
    assert owner_alive(me)
    assert owner_alive({**me, "since": me["since"] - STEP_S, "boot": me["boot"] - STEP_S})
    assert not owner_alive({**me, "since": me["since"] - STEP_S})
    # An owner recorded by an older likkerctl (no boot time): by start time alone.
    assert owner_alive({k: v for k, v in me.items() if k != "boot"})
    assert not owner_alive({"host": me["host"], "pid": me["pid"], "since": me["since"] - STEP_S})


@pytest.mark.parametrize(
    ("recorded", "now", "same"),
    [
        (Start(1000.0, 10.0), Start(1000.0, 10.0), True),
        (Start(1000.0, 10.0), Start(1000.04, 10.0), True),  # within a tick or so
        (Start(1000.0, 10.0), Start(1016.0, 26.0), True),  # the clock stepped forward
        (Start(1000.0, 10.0), Start(984.0, -6.0), True),  # and back
        (Start(1000.0, 10.0), Start(1016.0, 10.0), False),  # another start
        (Start(1000.0, None), Start(1016.0, 26.0), False),  # no boot time: start time only
        (Start(1000.0, 10.0), Start(1000.0, 26.0), True),  # macOS/BSD: wall start kept
    ],
)
def test_same_start(recorded: Start, now: Start, same: bool) -> None:
    assert same_start(recorded, now) is same
