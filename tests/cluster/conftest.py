"""A CLI runner on the session's 3-node stack (the `cluster` fixture of tests/conftest.py)."""

from __future__ import annotations

import uuid

import pytest

from tests.helpers import RunningStack
from tests.ops.conftest import Cli


@pytest.fixture
def queues(cluster: RunningStack) -> tuple[str, str]:
    """Two fresh quorum queues with a member on every node (declared while all are up)."""
    tag = uuid.uuid4().hex[:8]
    names = (f"test.src.{tag}", f"test.dst.{tag}")
    conn = cluster.connect()
    for name in names:
        conn.channel().queue_declare(name, durable=True, arguments={"x-queue-type": "quorum"})
    conn.close()
    return names


@pytest.fixture(scope="session")
def cluster_cli(cluster: RunningStack, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    return Cli(cluster, tmp_path_factory.mktemp("cluster-config"))
