"""The session's one 3-node stack, a CLI runner on it, and fresh queues replicated on it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.helpers import RunningStack, assert_all_gone, start_stack
from tests.ops.conftest import Cli


@pytest.fixture(scope="package")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """The one 3-node stack of a test session, shared by every cluster test.

    A cluster takes about 45 s to start here; one per session keeps CI within its budget.
    Package-scoped, so it is stopped when the cluster tests are done rather than idling
    through the rest of the session. Tests that kill a node bring it back (`stack up`).
    """
    stack = start_stack(tmp_path_factory.mktemp("cluster"), nodes=3)
    try:
        yield stack
    finally:
        assert_all_gone(stack.down())


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


@pytest.fixture(scope="package")
def cluster_cli(cluster: RunningStack, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    return Cli(cluster, tmp_path_factory.mktemp("cluster-config"))
