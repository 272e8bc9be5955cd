"""A cluster as operators read it: nodes down by name, quorum replicas online, profiles of
several nodes, and the order in which a client tries them."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from likkerctl.core import status
from likkerctl.core.contract.nodes import Backoff, Nodes, split_urls
from likkerctl.core.profile import ConfigError, load_profile
from tests.unit.test_profile import env_for, write_config

MEMBERS = ["n1@h", "n2@h", "n3@h"]


def test_a_dead_member_is_down_by_name_with_no_figures_and_no_alarms() -> None:
    row = status.node_row({"name": "n2@h", "running": False, "disk_free_alarm": True})
    assert (row["name"], row["state"], row["disk_free"], row["disk_alarm"]) == (
        "n2@h",
        "down",
        None,
        False,
    )
    up = status.node_row({"name": "n1@h", "running": True, "disk_free": 9, "disk_free_limit": 4})
    assert (up["state"], up["disk_headroom"]) == ("running", 5)


@pytest.mark.parametrize(
    ("online", "line", "available"),
    [
        (MEMBERS, "3/3 online", True),
        (["n1@h", "n3@h"], "2/3 online", True),
        (["n1@h"], "queue unavailable: 1/3 online", False),
    ],
)
def test_quorum_replicas_say_how_many_are_online(
    online: list[str], line: str, available: bool
) -> None:
    rep = status.replicas({"members": MEMBERS, "online": online, "leader": "n1@h"})
    assert rep is not None
    assert status.replicas_line(rep) == line
    assert rep["available"] is available
    assert status.replicas_degraded(rep) is (len(online) < 3)


def test_a_classic_queue_has_no_replicas() -> None:
    assert status.replicas({"name": "q", "type": "classic"}) is None
    assert status.replicas_line(None) == ""
    assert status.queue_row({"name": "q"})["replicas"] is None


def test_profile_lists_of_nodes_from_the_file_and_a_comma_separated_environment(
    tmp_path: Path,
) -> None:
    write_config(
        tmp_path,
        'default_profile = "c"\n[profiles.c]\n'
        'amqp_urls = ["amqp://u:p@r1:5672/%2F", "amqp://u:p@r2:5672/%2F"]\n'
        'mgmt_urls = ["http://ops:pw@r1:15672", "http://r2:15672"]\n',
    )
    p = load_profile(environ=env_for(tmp_path))
    assert p.amqp_url == "amqp://u:p@r1:5672/%2F" and len(p.amqp_urls) == 2
    assert p.mgmt_urls == ["http://r1:15672", "http://r2:15672"]
    assert (p.mgmt_user, p.mgmt_password) == ("ops", "pw")
    assert "p@" not in str(p.redacted()["amqp_urls"])

    p = load_profile(environ=env_for(tmp_path, LIKKER_AMQP_URL="amqp://a:1, amqp://b:2"))
    assert p.amqp_urls == ["amqp://a:1", "amqp://b:2"] and p.amqp_url == "amqp://a:1"


def test_a_single_url_profile_keeps_working_and_lists_itself(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        '[profiles.one]\namqp_url = "amqp://r:5672"\nmgmt_url = "http://r:15672"\n',
    )
    p = load_profile("one", environ=env_for(tmp_path))
    assert (p.amqp_urls, p.mgmt_urls) == (["amqp://r:5672"], ["http://r:15672"])


def test_a_url_list_of_the_wrong_type_is_a_config_error(tmp_path: Path) -> None:
    write_config(tmp_path, '[profiles.bad]\namqp_urls = [1, 2]\nmgmt_url = "http://r"\n')
    with pytest.raises(ConfigError, match="amqp_urls must be a list of URLs"):
        load_profile("bad", environ=env_for(tmp_path))


def test_the_local_profile_of_a_cluster_stack_lists_every_node(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    settings = {"state_dir": str(state), "nodes": 3, "ports": {"amqp": 7000, "management": 8000}}
    (state / "stack.json").write_text(json.dumps(settings))
    p = load_profile(environ=env_for(tmp_path))
    assert [u.split("@")[1].split("/")[0] for u in p.amqp_urls] == [
        "127.0.0.1:7000",
        "127.0.0.1:7001",
        "127.0.0.1:7002",
    ]
    assert p.mgmt_urls[2] == "http://127.0.0.1:8002"


def test_a_client_tries_the_node_after_the_one_that_failed_first(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert split_urls(["a, b", "", "c"]) == ["a", "b", "c"]
    nodes = Nodes("amqp://h:1,amqp://h:2,amqp://h:3", "gateway", logging.getLogger("t"))
    nodes.opened("amqp://h:1")
    nodes.failed("amqp://h:1")
    assert nodes.order() == ["amqp://h:2", "amqp://h:3", "amqp://h:1"]
    with caplog.at_level(logging.WARNING):
        nodes.opened("amqp://h:2")
        nodes.opened("amqp://h:2")  # a reconnect to the same node is no failover
    assert [r.getMessage() for r in caplog.records] == ["gateway: failover: now on h:2 (was h:1)"]


def test_backoff_doubles_to_its_ceiling_and_resets() -> None:
    backoff = Backoff(0.5, 2.0)
    assert [backoff.next() for _ in range(4)] == [0.5, 1.0, 2.0, 2.0]
    backoff.reset()
    assert backoff.next() == 0.5


def test_the_dashboard_shows_a_down_node_by_name_and_a_degraded_queue_in_red() -> None:
    from collections import deque

    from likkerctl.tui import render

    nodes = [
        status.node_row(
            {"name": "n1@h", "running": True, "disk_free": 900, "disk_free_limit": 100}
        ),
        status.node_row({"name": "n2@h", "running": False}),
    ]
    text = render.disk_text(nodes, None).plain
    assert "n2@h: DOWN" in text and "on n1@h" in text
    row = status.queue_row(
        {"name": "likker.actions", "members": MEMBERS, "online": ["n1@h", "n3@h"], "leader": "n1@h"}
    )
    ((_key, cells),) = render.queue_rows([row], {"likker.actions": deque()})
    assert str(cells[0]) == "likker.actions 2/3 online"
