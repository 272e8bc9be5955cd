"""Starting and stopping the stack's processes by pid, never by name.

Each part runs in its own session (so its process group id is its pid) and is recorded in
`<state>/pids/<part>.json` with its start time: a recycled pid is never signalled.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from likkerctl.core.contract.ports import port_in_use as port_in_use
from likkerctl.core.contract.process import Start, is_process, start_of


@dataclass
class ProcRecord:
    part: str
    pid: int
    create_time: float
    argv: list[str]
    log: str
    url: str | None = None
    # The boot time psutil read with create_time: with it a wall-clock step does not make the
    # part look like someone else's (likkerctl/core/contract/process.py). None in old files.
    boot_time: float | None = None

    def save(self, pid_dir: Path) -> None:
        pid_dir.mkdir(parents=True, exist_ok=True)
        (pid_dir / f"{self.part}.json").write_text(json.dumps(asdict(self)))

    def is_running(self) -> bool:
        if not is_process(self.pid, Start(self.create_time, self.boot_time)):
            return False  # gone, or the pid was recycled: not ours
        try:
            return psutil.Process(self.pid).status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    def group_members(self) -> list[psutil.Process]:
        """Processes still in this part's process group (children that outlived the leader)."""
        members = []
        for proc in psutil.process_iter(["pid"]):
            with contextlib.suppress(psutil.Error, ProcessLookupError):
                if os.getpgid(proc.pid) == self.pid and proc.status() != psutil.STATUS_ZOMBIE:
                    members.append(proc)
        return members


def load_records(pid_dir: Path) -> dict[str, ProcRecord]:
    records = {}
    if pid_dir.is_dir():
        for path in sorted(pid_dir.glob("*.json")):
            try:
                rec = ProcRecord(**json.loads(path.read_text()))
            except (ValueError, TypeError):
                continue
            records[rec.part] = rec
    return records


def spawn(
    part: str,
    argv: Sequence[str],
    *,
    log_path: Path,
    pid_dir: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    url: str | None = None,
    user: str | None = None,
) -> ProcRecord:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
            user=user,  # e.g. PostgreSQL, which refuses to run as root
        )
    start = start_of(proc.pid)
    rec = ProcRecord(
        part=part,
        pid=proc.pid,
        create_time=start.since,
        argv=list(argv),
        log=str(log_path),
        url=url,
        boot_time=start.boot,
    )
    rec.save(pid_dir)
    return rec


def _reap(pid: int) -> None:
    # Our own children become zombies until waited for; a detached CLI's are reaped by init.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def stop(rec: ProcRecord, *, timeout: float = 15.0, sig: int = signal.SIGTERM) -> bool:
    """Signal the part's process group, wait, then SIGKILL what is left. True if it was running."""
    was_running = rec.is_running()
    if was_running:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(rec.pid, sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(rec.pid)
        if not rec.is_running() and not rec.group_members():
            return was_running
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(rec.pid, signal.SIGKILL)
    for _ in range(50):
        _reap(rec.pid)
        if not rec.is_running() and not rec.group_members():
            break
        time.sleep(0.1)
    return was_running


# Below Linux's ephemeral range (32768-60999): a port the kernel hands out for bind(0) can be
# taken as the source port of any outgoing connection before our server binds it (seen in
# CI: the broker's management listener failed with eaddrinuse).
_PORT_RANGE = (20000, 32000)
_issued: set[int] = set()


def free_port(host: str = "127.0.0.1", block: int = 1) -> int:
    """The first of `block` consecutive ports that are free now and not issued before."""
    rng = random.Random()
    for _ in range(1000):
        start = rng.randrange(_PORT_RANGE[0], _PORT_RANGE[1] - block)
        ports = range(start, start + block)
        if any(p in _issued for p in ports):
            continue
        if all(_bindable(host, p) for p in ports):
            _issued.update(ports)
            return start
    raise RuntimeError(f"no {block} free consecutive port(s) in {_PORT_RANGE}")


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def wait_until(
    check: Callable[[], bool],
    *,
    timeout: float,
    interval: float = 0.2,
    alive: Callable[[], bool] | None = None,
) -> bool:
    """Poll `check` until true; stop early (False) when `alive` says the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return True
        except Exception:  # any failure just means "not ready yet"
            pass
        if alive is not None and not alive():
            return False
        time.sleep(interval)
    return False
