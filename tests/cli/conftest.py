"""The middle layer: likkerctl in-process against recorded answers served over real HTTP.

No broker here. The management API and the auth service are the replay server
(tests/cli/replay.py) serving answers recorded on a real stack; AMQP is a port that refuses
connections. What needs AMQP (sampling for peek/top/dlq list, exact counts for `status`,
moves, purges, takers over the control exchange) is covered by the real-process suites in
tests/ops and tests/stack; here only the paths that finish or fail before AMQP is needed.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest
from typer.testing import CliRunner

from likkerctl.cli.main import main
from tests.cli.replay import Recordings, ReplayServer, closed_port

DASHBOARD_RECORDINGS = Path(__file__).parent.parent / "dashboard" / "recordings"
AMQP_PASSWORD = "amqp-secret-pw"
MGMT_PASSWORD = "guest"


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> Any:
        return json.loads(self.stdout)

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("error:")]


class Runner(Protocol):
    def __call__(self, *args: str, env: dict[str, str | None] | None = None) -> Run: ...


def run_main(args: list[str], env: dict[str, str | None]) -> Run:
    """Run likkerctl's console-script entry point, `likkerctl.cli.main.main`, in-process.

    `main()` and not the Typer app, because `main()` is what maps the core's errors to the
    documented exit codes (`likkerctl.cli.errors.exit_code`) and prints the one `error: ...`
    line; `CliRunner.invoke(app, ...)` would only see the exception (exit 1 and a traceback in
    `result.exception`). So: CliRunner's `isolation()` for its stream capture and its
    `env=` handling (set for the call, restored after), `sys.argv` as the console script
    sees it, and the exit status from `SystemExit` exactly as the shell would get it.
    """
    runner = CliRunner()
    with runner.isolation(env=env) as (out, err, _mixed):
        argv = sys.argv
        sys.argv = ["likkerctl", *args]
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            sys.argv = argv
            sys.stdout.flush()
            sys.stderr.flush()
        return Run(code, out.getvalue().decode(), err.getvalue().decode())


# -- servers --------------------------------------------------------------------------
@pytest.fixture(scope="session")
def recordings() -> Recordings:
    return Recordings.load()


@pytest.fixture(scope="session")
def replay_server(recordings: Recordings) -> Iterator[ReplayServer]:
    server = ReplayServer(recordings, mgmt_password=MGMT_PASSWORD).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def replay(replay_server: ReplayServer) -> Iterator[ReplayServer]:
    """The replay server as recorded, whatever the previous test switched."""
    replay_server.reset()
    yield replay_server
    replay_server.reset()


@pytest.fixture(scope="session")
def closed_port_number() -> Iterator[int]:
    sock = closed_port()
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.close()


# -- a profile given by the environment ------------------------------------------------
@pytest.fixture
def env(replay: ReplayServer, closed_port_number: int, tmp_path: Path) -> dict[str, str | None]:
    """LIKKER_* for the replay server: the built-in profile overridden by the environment.

    Every other LIKKER_* of the caller's shell is unset for the call. Prometheus and
    Alertmanager point at the refusing port too: the built-in local profile would otherwise
    use the reference stack's default ports, where another stack may be running.
    """
    closed = f"127.0.0.1:{closed_port_number}"
    state = tmp_path / "state"
    return {
        **{k: None for k in os.environ if k.startswith("LIKKER_")},
        "LIKKER_MGMT_URL": replay.url,
        "LIKKER_AMQP_URL": f"amqp://guest:{AMQP_PASSWORD}@{closed}/",
        "LIKKER_AUTH_URL": replay.url,
        "LIKKER_PROMETHEUS_URL": f"http://{closed}",
        "LIKKER_ALERTMANAGER_URL": f"http://{closed}",
        "LIKKER_STATE_DIR": str(state),
        "LIKKER_CONFIG": str(tmp_path / "none.toml"),
        "XDG_CONFIG_HOME": str(tmp_path / "xdg-config"),
        "XDG_STATE_HOME": str(tmp_path / "xdg-state"),
    }


@pytest.fixture
def run(env: dict[str, str | None]) -> Runner:
    """`run("status", "--json")` → Run(code, stdout, stderr); `env=` adds to the profile's."""

    def _run(*args: str, env: dict[str, str | None] | None = None) -> Run:
        return run_main(list(args), {**base_env, **(env or {})})

    base_env = env
    return _run
