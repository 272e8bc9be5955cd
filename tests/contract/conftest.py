"""One stack for the contract tests (fuzzing, authorization): started once for the package,
on free ports in a temp dir, stopped by pid."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers import RunningStack, assert_all_gone, start_stack


@pytest.fixture(scope="package")
def contract_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    stack = start_stack(
        tmp_path_factory.mktemp("contract-stack"), retry_policy="classified", takers=1
    )
    try:
        yield stack
    finally:
        assert_all_gone(stack.down())
