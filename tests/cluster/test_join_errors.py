"""A node that cannot join is an error naming the node and its log (real rabbitmqctl)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stack import broker, procs
from stack.settings import BrokerNode, StackSettings
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


def booted(settings: StackSettings, node: BrokerNode) -> bool:
    """Until the node has registered with epmd, `await_startup` fails at once: retry."""
    return procs.wait_until(
        lambda: broker.rabbitmqctl(settings, node, "await_startup").returncode == 0,
        timeout=120,
        interval=1,
    )


def test_a_node_with_another_cookie_does_not_join_and_names_itself_and_its_log(
    tmp_path: Path,
) -> None:
    settings = StackSettings(tmp_path / "state", ports=free_ports(nodes=2), nodes=2)
    seed, node = settings.broker_nodes
    spawned = []
    try:
        spawned.append(
            procs.spawn(
                "epmd",
                broker.epmd_argv(settings),
                log_path=settings.log_dir / "epmd.log",
                pid_dir=settings.pid_dir,
                env=broker.node_env(settings, seed),
            )
        )
        assert procs.wait_until(
            lambda: procs.port_in_use(settings.host, settings.ports.epmd), timeout=10
        )
        for each in (seed, node):
            broker.render_files(settings, each)
        # Node 2 (and rabbitmqctl run for it) with a cookie of its own: node 1 refuses it.
        cookie = broker.node_dir(settings, node) / "home" / ".erlang.cookie"
        cookie.chmod(0o600)
        cookie.write_text("NOT" + broker.ensure_cookie(settings))
        cookie.chmod(0o400)
        for each in (seed, node):
            spawned.append(
                procs.spawn(
                    each.part,
                    broker.server_argv(),
                    log_path=settings.log_dir / f"{each.part}.log",
                    pid_dir=settings.pid_dir,
                    env=broker.node_env(settings, each),
                )
            )
        for each in (seed, node):
            assert booted(settings, each), (settings.log_dir / f"{each.part}.log").read_text()
        with pytest.raises(broker.JoinFailed) as failed:
            broker.join(settings, node)
        assert broker.cluster_members(settings, seed) == {seed.node_name}
    finally:
        for rec in reversed(spawned):
            procs.stop(rec, timeout=60)
    assert not [rec.pid for rec in spawned if rec.is_running()]
    message = str(failed.value)
    assert message.startswith("node likker-2@localhost did not join likker@localhost: "), message
    assert "`rabbitmqctl join_cluster likker@localhost` failed: Error: " in message
    assert "suggestion: check if the Erlang cookie is identical" in message, message
    assert f"(log {broker.node_dir(settings, node) / 'log'})" in message
