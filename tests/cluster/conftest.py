"""A CLI runner on the session's 3-node stack (the `cluster` fixture of tests/conftest.py)."""

from __future__ import annotations

import pytest

from tests.helpers import RunningStack
from tests.ops.conftest import Cli


@pytest.fixture(scope="session")
def cluster_cli(cluster: RunningStack, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    return Cli(cluster, tmp_path_factory.mktemp("cluster-config"))
