"""One stack for all operations tests (session-scoped: it is the slow part), and a CLI runner.

Tests use their own queues (unique names) so they never see each other's messages; the
stack's takers only consume likker.actions.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pika
import pytest

from tests.helpers import RunningStack, assert_all_gone, start_stack


@dataclass
class Run:
    rc: int
    stdout: str
    stderr: str

    @property
    def json(self) -> Any:
        return json.loads(self.stdout)


class Cli:
    """Runs `python -m likkerctl` against the test stack, as a user would."""

    def __init__(self, stack: RunningStack, config_home: Path) -> None:
        self.stack = stack
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("LIKKER_")} | {
            "LIKKER_STATE_DIR": str(stack.settings.state_dir),
            "XDG_CONFIG_HOME": str(config_home),
            "COLUMNS": "200",
        }

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "likkerctl", *args]

    def __call__(self, *args: str, env: dict[str, str] | None = None, timeout: float = 120) -> Run:
        proc = subprocess.run(
            self.argv(*args),
            env=self.env | (env or {}),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        return Run(proc.returncode, proc.stdout, proc.stderr)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.argv(*args),
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )


@pytest.fixture(scope="session")
def ops_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    stack = start_stack(tmp_path_factory.mktemp("ops-stack"), takers=2)
    try:
        yield stack
    finally:
        assert_all_gone(stack.down())


@pytest.fixture(scope="session")
def cli(ops_stack: RunningStack, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    return Cli(ops_stack, tmp_path_factory.mktemp("config"))


@pytest.fixture
def queues(ops_stack: RunningStack) -> Iterator[tuple[str, str]]:
    """Two fresh quorum queues (source, destination), deleted afterwards."""
    tag = uuid.uuid4().hex[:8]
    names = (f"test.src.{tag}", f"test.dst.{tag}")
    conn = pika.BlockingConnection(pika.URLParameters(ops_stack.settings.amqp_url))
    ch = conn.channel()
    for name in names:
        ch.queue_declare(name, durable=True, arguments={"x-queue-type": "quorum"})
    conn.close()
    yield names
    # Purged, not deleted: deleting a quorum queue takes seconds, and the whole stack goes
    # at the end of the session anyway.
    conn = pika.BlockingConnection(pika.URLParameters(ops_stack.settings.amqp_url))
    ch = conn.channel()
    for name in names:
        ch.queue_purge(name)
    conn.close()


def depth(stack: RunningStack, queue: str) -> int:
    conn = pika.BlockingConnection(pika.URLParameters(stack.settings.amqp_url))
    try:
        return int(conn.channel().queue_declare(queue, passive=True).method.message_count)
    finally:
        conn.close()


@pytest.fixture
def nodeless(ops_stack: RunningStack, tmp_path: Path) -> dict[str, str]:
    """Environment for a profile with the stack's URLs but no node: no in-place peek."""
    cfg = tmp_path / "likkerctl" / "config.toml"
    cfg.parent.mkdir(parents=True)
    s = ops_stack.settings
    cfg.write_text(
        f'default_profile = "bare"\n[profiles.bare]\namqp_url = "{s.amqp_url}"\n'
        f'mgmt_url = "{s.management_url}"\n'
    )
    return {"XDG_CONFIG_HOME": str(tmp_path)}
