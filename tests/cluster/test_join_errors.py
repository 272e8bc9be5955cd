"""A node that cannot join is an error naming the node and its log (real rabbitmqctl)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stack import broker, procs
from stack.settings import StackSettings
from tests.helpers import free_ports


def test_a_node_that_cannot_be_reached_to_join_names_itself_and_its_log(tmp_path: Path) -> None:
    settings = StackSettings(tmp_path / "state", ports=free_ports(nodes=2), nodes=2)
    node = settings.broker_nodes[1]
    broker.render_files(settings, node)  # its files, cookie and HOME, but no node running
    # The stack's own epmd, as in `stack up`: without one, rabbitmqctl would start a daemon
    # of its own that nobody stops.
    epmd = procs.spawn(
        "epmd",
        broker.epmd_argv(settings),
        log_path=settings.log_dir / "epmd.log",
        pid_dir=settings.pid_dir,
        env=broker.node_env(settings, node),
    )
    try:
        assert procs.wait_until(
            lambda: procs.port_in_use(settings.host, settings.ports.epmd), timeout=10
        )
        with pytest.raises(broker.JoinFailed) as failed:
            broker.join(settings, node)
    finally:
        procs.stop(epmd, timeout=5)
    message = str(failed.value)
    assert message.startswith("node likker-2@localhost did not join likker@localhost: ")
    assert "`rabbitmqctl stop_app` failed" in message
    assert f"(log {broker.node_dir(settings, node) / 'log'})" in message
