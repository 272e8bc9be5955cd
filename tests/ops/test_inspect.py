"""status, peek, top and config against the real stack; error exits for bad servers."""

from __future__ import annotations

import subprocess

from likkerctl.core import contract
from likkerctl.core.clients import rabbit
from stack import broker
from tests.helpers import RunningStack, fill_queue, free_ports, wait_for
from tests.ops.conftest import Cli, depth

BOT = 777


def test_status_json_lists_queues_disk_takers_and_alerts(cli: Cli) -> None:
    run = cli("status", "--json")
    assert run.rc == 0, run.stderr
    data = run.json
    node = data["nodes"][0]
    assert node["disk_free"] > node["disk_free_limit"] > 0
    assert node["disk_headroom"] == node["disk_free"] - node["disk_free_limit"]
    assert node["disk_alarm"] is False
    names = [q["name"] for q in data["queues"]]
    assert names[:2] == [contract.ACTIONS_QUEUE, contract.DLQ_QUEUE]
    actions = data["queues"][0]
    for key in ("ready", "unacked", "bytes", "publish_rate", "redeliver_rate", "consumers"):
        assert key in actions
    # The management API's counts lag by one statistics interval (2 s in the stack).
    assert wait_for(lambda: cli("status", "--json").json["queues"][0]["consumers"] == 2, timeout=10)
    assert [t["taker_id"] for t in data["takers"]] == ["taker-1", "taker-2"]

    # What fires depends on the machine: the disk is shared with other runs, and a neighbour
    # writing fast fires the disk forecast. What status lists is what Alertmanager has.
    def firing_in_both() -> bool:
        listed = cli("status", "--json").json["alertmanager"]
        assert listed["configured"] is True
        held = cli.stack.http.get(
            f"{cli.stack.settings.alertmanager_url}/api/v2/alerts",
            params={"active": "true", "silenced": "false", "inhibited": "false"},
            timeout=5,
        )
        held.raise_for_status()
        firing = sorted(
            a["labels"]["alertname"] for a in held.json() if a["status"]["state"] == "active"
        )
        return sorted(a["name"] for a in listed["alerts"]) == firing

    assert wait_for(firing_in_both, timeout=20)


def test_status_table_for_people(cli: Cli) -> None:
    run = cli("status")
    assert run.rc == 0, run.stderr
    for text in ("broker nodes", "headroom", contract.ACTIONS_QUEUE, "taker-1", "alerts:"):
        assert text in run.stdout


def test_peek_shows_messages_and_leaves_them_in_place(
    cli: Cli, ops_stack: RunningStack, queues: tuple[str, str], nodeless: dict[str, str]
) -> None:
    src, _ = queues
    ids = fill_queue(ops_stack.settings.amqp_url, src, 30, bot_every=3, bot_id=BOT, declare=False)
    # Without the node (no side-effect-free peek), sampling takes and returns.
    run = cli("peek", src, "-n", "5", "--json", env=nodeless)
    assert run.rc == 0, run.stderr
    assert run.json["sampling"].startswith("take and return")
    msgs = run.json["messages"]
    assert [m["message_id"] for m in msgs] == list(ids)[:5]
    assert msgs[0]["actor"] == f"bot:{BOT}" and msgs[1]["actor"].startswith("user:")
    assert msgs[0]["body"]["request_id"] == msgs[0]["message_id"]
    assert wait_for(lambda: depth(ops_stack, src) == 30)
    # The documented effect: exactly the sampled messages come back redelivered, with one
    # more delivery, at the tail of the quorum queue. (Read in place through the node.)
    again = cli("peek", src, "-n", "30", "--json").json["messages"]
    assert [m["message_id"] for m in again] == list(ids)[5:] + list(ids)[:5]
    assert [m["redelivered"] for m in again] == [False] * 25 + [True] * 5
    assert again[-1]["delivery_count"] == 1


def test_top_ranks_the_bot_first_by_share_and_redeliveries(
    cli: Cli, ops_stack: RunningStack, queues: tuple[str, str], nodeless: dict[str, str]
) -> None:
    src, _ = queues
    fill_queue(ops_stack.settings.amqp_url, src, 400, bot_every=2, bot_id=BOT, declare=False)
    cli("peek", src, "-n", "400", env=nodeless)  # taken and returned: once more delivered
    assert wait_for(lambda: depth(ops_stack, src) == 400)  # returns land asynchronously
    run = cli("top", src, "--by", "bot", "--json")
    assert run.rc == 0, run.stderr
    data = run.json
    assert data["sampled"] == 400 and data["depth"] == 400
    first = data["rows"][0]
    assert first["bot"] == BOT and first["share"] == 0.5 and first["estimated"] == 200
    assert first["redeliveries"] == 200 and first["redelivery_share"] == 0.5
    assert data["delivery_counts"]["1"] == 400
    assert cli("top", src, "--by", "color").rc == 2


def test_config_show_hides_secrets(cli: Cli) -> None:
    run = cli(
        "config",
        "show",
        "--json",
        env={"LIKKER_MGMT_URL": "http://ops:s3cret@127.0.0.1:1", "LIKKER_ADMIN_TOKEN": "tok"},
    )
    assert run.rc == 0, run.stderr
    assert "s3cret" not in run.stdout and 'tok"' not in run.stdout
    data = run.json
    assert data["mgmt_user"] == "ops" and data["mgmt_password"] == "***"
    assert data["sources"]["mgmt_url"] == "LIKKER_MGMT_URL"


def test_profile_from_config_file_and_unknown_profile(cli: Cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    s = cli.stack.settings
    (tmp_path / "likkerctl").mkdir()
    (tmp_path / "likkerctl" / "config.toml").write_text(
        f'[profiles.test]\namqp_url = "{s.amqp_url}"\nmgmt_url = "{s.management_url}"\n'
    )
    env = {"XDG_CONFIG_HOME": str(tmp_path)}
    run = cli("--profile", "test", "status", "--json", env=env)
    assert run.rc == 0, run.stderr
    assert run.json["profile"] == "test" and run.json["alertmanager"]["configured"] is False
    bad = cli("--profile", "nope", "status", env=env)
    assert bad.rc == 2 and "unknown profile 'nope'" in bad.stderr and "test" in bad.stderr


def test_bad_config_file_is_a_clear_usage_error(cli: Cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "likkerctl").mkdir()
    (tmp_path / "likkerctl" / "config.toml").write_text("[profiles.x]\namqp_ulr = 'a'\n")
    run = cli("status", env={"XDG_CONFIG_HOME": str(tmp_path)})
    assert run.rc == 2 and "unknown key(s) amqp_ulr" in run.stderr


def test_unreachable_broker_names_the_url_exit_3(cli: Cli) -> None:
    port = free_ports().management
    run = cli("status", env={"LIKKER_MGMT_URL": f"http://127.0.0.1:{port}"})
    assert run.rc == 3
    assert f"127.0.0.1:{port}" in run.stderr and len(run.stderr.strip().splitlines()) == 1


def test_wrong_credentials_exit_4(
    cli: Cli, queues: tuple[str, str], nodeless: dict[str, str]
) -> None:
    run = cli("status", env={"LIKKER_MGMT_PASSWORD": "wrong"})
    assert run.rc == 4 and "refused" in run.stderr
    amqp = cli.stack.settings.amqp_url.replace("guest:guest", "guest:wrong")
    # Without the node, peek reads over AMQP (with it, it would not need the password).
    run = cli("peek", queues[0], env={**nodeless, "LIKKER_AMQP_URL": amqp})
    assert run.rc == 4 and "***" in run.stderr and "wrong" not in run.stderr


def test_missing_shovel_plugin_is_reported(
    cli: Cli, ops_stack: RunningStack, queues: tuple[str, str]
) -> None:
    """--engine broker against a node without the plugin: exit 6 naming the plugin."""
    ctl = ["/usr/lib/rabbitmq/bin/rabbitmq-plugins", "-n", ops_stack.settings.node_name]
    env = broker.node_env(ops_stack.settings)
    plugins = ["rabbitmq_shovel_management", "rabbitmq_shovel"]

    def enabled() -> bool:
        return rabbit.SHOVEL_PLUGIN in ops_stack.mgmt("nodes")[0]["enabled_plugins"]

    subprocess.run(
        [*ctl, "disable", "--online", *plugins], env=env, check=True, capture_output=True
    )
    try:
        assert wait_for(lambda: not enabled())
        run = cli("shovel", *queues, "--engine", "broker", "--yes")
        assert run.rc == 6 and "rabbitmq_shovel" in run.stderr
        auto = cli("shovel", *queues, "--dry-run", "--json")
        assert auto.rc == 0 and auto.json["engine"] == "client"
    finally:
        subprocess.run(
            [*ctl, "enable", "--online", *plugins[::-1]], env=env, check=True, capture_output=True
        )
        assert wait_for(enabled)
