"""Shared fixtures. Stacks are started on free ports in temp dirs and stopped by pid.

No skipping when RabbitMQ/Prometheus/Alertmanager are missing: the README's test command
installs them, and a suite that silently skips its integration tests proves nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from stack import postgres
from tests.helpers import RunningStack, assert_all_gone, start_stack
from tests.postgres import PostgresServer, running_postgres

# The stores a DB-parametrised stack runs on: SQLite files, and a database on the
# session's PostgreSQL server (`--db-url`); `private-postgresql` starts the stack's own.
DATABASES = ("sqlite", "postgresql")


# `-n 2 --dist loadgroup` (pyproject): each group runs whole on one worker, so a module-
# or package-scoped stack is started once. Groups are modules, and the cluster package is
# one group (its 3-node stack is package-scoped). Long groups go first so that the two
# workers finish together (`--no-loadscope-reorder`: xdist would otherwise send the groups
# with the most tests first, and a one-test drill of three minutes last). Durations:
# docs/BENCHMARKS.md, "The test suite".
LONG_FIRST = (
    "tests/cluster",
    "tests/stack/test_forecast.py",
    "tests/stack/test_forecast_recovery.py",
    "tests/ops/test_moves.py",
    "tests/faults",
    "tests/stack/test_stack_lifecycle.py",
    "tests/stack/test_likes_path.py",
    "tests/stack/test_incident_requeue.py",
)


def _group(item: pytest.Item) -> str:
    path = item.nodeid.split("::", 1)[0]
    return "tests/cluster" if path.startswith("tests/cluster/") else path


def _rank(item: pytest.Item) -> int:
    path = item.nodeid.split("::", 1)[0]
    return next((i for i, p in enumerate(LONG_FIRST) if path.startswith(p)), len(LONG_FIRST))


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.xdist_group(_group(item)))
    items.sort(key=_rank)  # stable: a module's tests keep their order


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the whole session; each stack gets a database on it."""
    with running_postgres() as server:
        yield server


def stack_fixture(
    own_disk: bool = False, databases: tuple[str, ...] = ("sqlite",), **settings: Any
) -> Callable[..., Iterator[RunningStack]]:
    """A module-scoped fixture running one stack with the given settings.

    `own_disk`: the stack's state dir is a tmpfs of its own (tests/incident.py), for tests
    that expect free disk to move only with what the stack writes; this machine's disk is
    shared with other test runs, which write and delete hundreds of MB meanwhile.
    `databases`: run the module once per store (DATABASES, or "private-postgresql").
    """

    @pytest.fixture(scope="module", params=databases)
    def _stack(
        request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
    ) -> Iterator[RunningStack]:
        with ExitStack() as cleanup:
            state = tmp_path_factory.mktemp("stack")
            if own_disk:
                from tests.incident import own_disk as mounted

                state = cleanup.enter_context(mounted(state / "own-disk"))
            store: dict[str, Any] = {}
            if request.param == "postgresql":
                server: PostgresServer = request.getfixturevalue("postgres_server")
                store = {"db": "postgresql", "db_url": server.new_database("stack")}
            elif request.param == "private-postgresql":
                store = {"db": "postgresql"}
            stack = start_stack(state, **settings, **store)
            try:
                yield stack
            finally:
                assert_all_gone(stack.down())
                if request.param == "private-postgresql":
                    postgres.wipe(stack.settings)  # its cluster may be outside the tmp dir

    return _stack
