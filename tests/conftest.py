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
