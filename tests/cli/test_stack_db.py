"""`stack up` with a database that cannot be used: exit 2/3, one line, nothing left running."""

from __future__ import annotations

from pathlib import Path

import pytest

from likkerctl.cli import errors as exit_codes
from stack import postgres, procs, supervisor
from stack.settings import StackSettings
from tests.cli.conftest import Runner
from tests.cli.test_exit_codes import one_error_line
from tests.helpers import free_ports


def test_an_unreachable_db_url_is_exit_3_with_the_reason_and_nothing_starts(
    run: Runner, tmp_path: Path, closed_port_number: int
) -> None:
    state = tmp_path / "stack"
    url = f"postgresql://likker:s3cret@127.0.0.1:{closed_port_number}/likker"
    done = run("stack", "up", "--db-url", url, "--state-dir", str(state))
    assert done.code == exit_codes.UNREACHABLE == 3, done.stderr
    line = one_error_line(done)
    assert line.startswith(
        f"error: database postgresql+psycopg://likker:***@127.0.0.1:{closed_port_number}/likker "
        "unreachable: "
    ), line
    assert "refused" in line.lower()
    assert "s3cret" not in done.stderr
    assert procs.load_records(state / "pids") == {}  # nothing was started


def test_an_unknown_db_is_exit_2(run: Runner, tmp_path: Path) -> None:
    done = run("stack", "up", "--db", "mysql", "--state-dir", str(tmp_path / "stack"))
    assert done.code == exit_codes.USAGE == 2
    assert one_error_line(done) == "error: --db must be one of sqlite, postgresql"


def test_a_postgresql_that_will_not_start_is_the_reason_and_nothing_is_left_running(
    tmp_path: Path,
) -> None:
    settings = StackSettings(state_dir=tmp_path / "stack", ports=free_ports(), db="postgresql")
    settings.state_dir.mkdir()
    base = postgres.prepare(settings)  # a real cluster...
    (base / "data" / "PG_VERSION").write_text("14\n")  # ...made by another major version
    try:
        with pytest.raises(supervisor.DatabaseUnavailable) as info:
            supervisor.up(settings)
        message = str(info.value)
        assert "\n" not in message
        assert message.startswith("postgres exited after start: database files are incompatible")
        assert str(settings.log_dir / "postgres.log") in message
        assert procs.load_records(settings.pid_dir) == {}  # postgres was stopped, nothing else ran
        assert not procs.port_in_use(settings.host, settings.ports.postgres)
    finally:
        postgres.wipe(settings)
