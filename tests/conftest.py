"""Shared fixtures. Stacks are started on free ports in temp dirs and stopped by pid.

No skipping when RabbitMQ/Prometheus/Alertmanager are missing: the README's test command
installs them, and a suite that silently skips its integration tests proves nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.helpers import RunningStack, assert_all_gone, start_stack


def stack_fixture(**settings: Any) -> Callable[..., Iterator[RunningStack]]:
    """A module-scoped fixture running one stack with the given settings."""

    @pytest.fixture(scope="module")
    def _stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
        stack = start_stack(tmp_path_factory.mktemp("stack"), **settings)
        try:
            yield stack
        finally:
            assert_all_gone(stack.down())

    return _stack
