"""Shared fixtures. Stacks are started on free ports in temp dirs and stopped by pid.

No skipping when RabbitMQ/Prometheus/Alertmanager are missing: the README's test command
installs them, and a suite that silently skips its integration tests proves nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from tests.helpers import RunningStack, assert_all_gone, start_stack


def stack_fixture(own_disk: bool = False, **settings: Any) -> Callable[..., Iterator[RunningStack]]:
    """A module-scoped fixture running one stack with the given settings.

    `own_disk`: the stack's state dir is a tmpfs of its own (tests/incident.py), for tests
    that expect free disk to move only with what the stack writes; this machine's disk is
    shared with other test runs, which write and delete hundreds of MB meanwhile.
    """

    @pytest.fixture(scope="module")
    def _stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
        with ExitStack() as cleanup:
            state = tmp_path_factory.mktemp("stack")
            if own_disk:
                from tests.incident import own_disk as mounted

                state = cleanup.enter_context(mounted(state / "own-disk"))
            stack = start_stack(state, **settings)
            try:
                yield stack
            finally:
                assert_all_gone(stack.down())

    return _stack
