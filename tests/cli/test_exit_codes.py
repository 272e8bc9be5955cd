"""Exit codes and error lines of the console script, against the replayed servers.

The profile is the built-in one overridden by LIKKER_* (see conftest.env): the management
API and the auth service are the replay server, AMQP a port that refuses connections. Each
case is one that fails or ends before AMQP is needed, except where the test says AMQP is
reached: then it is exit 3 naming the AMQP URL, which is the boundary of this layer. The
same commands against a broker are in tests/ops.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from likkerctl.cli import errors as exit_codes
from likkerctl.core import contract
from stack import prometheus
from tests.cli.conftest import AMQP_PASSWORD, Run, Runner
from tests.cli.replay import ReplayServer

ACTIONS, DLQ = contract.ACTIONS_QUEUE, contract.DLQ_QUEUE


def one_error_line(run: Run) -> str:
    """The one `error: ...` line main() prints for an expected failure (and no traceback)."""
    assert "Traceback" not in run.stderr, run.stderr
    assert len(run.error_lines) == 1, run.stderr
    return run.error_lines[0]


def audit(run: Runner) -> list[dict[str, Any]]:
    done = run("audit", "--json")
    assert done.code == 0, done.stderr
    return list(done.json["entries"])


def without_shovel_plugin(replay: ReplayServer) -> None:
    nodes = replay.recordings.body("/api/nodes")
    assert any("rabbitmq_shovel" in n["enabled_plugins"] for n in nodes)  # as recorded
    for node in nodes:
        node["enabled_plugins"] = [p for p in node["enabled_plugins"] if "shovel" not in p]
    replay.override("/api/nodes", nodes)


# -- servers that cannot be reached or refuse us -------------------------------------------
def test_management_api_unreachable_is_exit_3_naming_its_url(
    run: Runner, replay: ReplayServer
) -> None:
    replay.mode = "closed"
    done = run("status", env={"LIKKER_MGMT_URL": replay.url})
    assert done.code == exit_codes.UNREACHABLE == 3
    line = one_error_line(done)
    assert line == f"error: RabbitMQ management API unreachable at {replay.url}: ConnectionError"
    assert done.stdout == ""


def test_management_api_refusing_everything_is_exit_4(run: Runner, replay: ReplayServer) -> None:
    replay.mode = "unauthorized"
    done = run("status")
    assert done.code == exit_codes.AUTH == 4
    assert one_error_line(done) == (
        f"error: RabbitMQ management API at {replay.url} refused user 'guest' "
        "(check mgmt_user/mgmt_password)"
    )


def test_a_wrong_management_password_is_exit_4_and_the_password_is_not_printed(
    run: Runner,
) -> None:
    done = run("forecast", "--source", "sampler", env={"LIKKER_MGMT_PASSWORD": "wrong-pw-123"})
    assert done.code == 4
    assert "refused user 'guest'" in one_error_line(done)
    assert "wrong-pw-123" not in done.stdout + done.stderr


def test_status_reads_the_management_api_then_needs_amqp_for_exact_counts(
    run: Runner, replay: ReplayServer, closed_port_number: int
) -> None:
    # Exact ready counts of the actions queue and DLQ come from AMQP (queue.declare passive);
    # the full `status` against a broker is tests/ops.
    done = run("status")
    assert done.code == 3
    assert one_error_line(done) == (
        f"error: RabbitMQ unreachable at amqp://guest:***@127.0.0.1:{closed_port_number}/: "
        "AMQPConnectionError"
    )
    assert AMQP_PASSWORD not in done.stdout + done.stderr
    assert replay.paths_seen() == ["/api/nodes", "/api/queues/%2F"]
    assert replay.seen[1].query == {"msg_rates_age": ["30"], "msg_rates_incr": ["5"]}


# -- unknown objects ----------------------------------------------------------------------
def test_top_of_an_unknown_queue_is_exit_5_from_the_management_api(
    run: Runner, replay: ReplayServer
) -> None:
    done = run("top", "no.such.queue")
    assert done.code == exit_codes.NOT_FOUND == 5
    assert one_error_line(done) == "error: no queue 'no.such.queue' in vhost '/'"
    assert replay.paths_seen() == ["/api/queues/%2F/no.such.queue"]


def test_peek_asks_the_queue_type_first_so_an_unknown_queue_is_exit_5(
    run: Runner, replay: ReplayServer
) -> None:
    # peek first reads the queue's type and arguments (how it may be sampled) from the
    # management API, before any AMQP connection.
    done = run("peek", "no.such.queue")
    assert done.code == 5
    assert one_error_line(done) == "error: no queue 'no.such.queue' in vhost '/'"
    assert replay.paths_seen()[0] == "/api/queues/%2F/no.such.queue"


@pytest.mark.parametrize(
    ("source", "destination"), [("no.such.queue", DLQ), (ACTIONS, "no.such.queue")]
)
def test_shovel_with_an_unknown_queue_is_exit_5_before_any_amqp(
    run: Runner, replay: ReplayServer, source: str, destination: str
) -> None:
    done = run("shovel", source, destination, "--dry-run")
    assert done.code == 5
    assert one_error_line(done) == "error: no queue 'no.such.queue' in vhost '/'"
    assert replay.paths_seen()[-1] == "/api/queues/%2F/no.such.queue"
    [entry] = audit(run)
    assert (entry["command"], entry["dry_run"], entry["result"]) == ("shovel", True, "failed")


def test_takers_without_the_control_exchange_is_exit_5(run: Runner, replay: ReplayServer) -> None:
    replay.forget("/api/exchanges/%2F/likker.control")
    done = run("takers", "status")
    assert done.code == 5
    assert one_error_line(done) == (
        "error: no control exchange 'likker.control' on the broker; are the takers deployed?"
    )


def test_takers_count_the_control_bindings_then_need_amqp(
    run: Runner, replay: ReplayServer
) -> None:
    # The takers answer over AMQP (direct reply-to): tests/ops/test_fleet.py.
    done = run("takers", "status")
    assert done.code == 3
    assert replay.paths_seen() == [
        "/api/exchanges/%2F/likker.control",
        "/api/exchanges/%2F/likker.control/bindings/source",
    ]


# -- bad input: exit 2, nothing done ------------------------------------------------------
def test_a_bad_predicate_is_exit_2_with_a_caret_and_nothing_is_audited(
    run: Runner, replay: ReplayServer
) -> None:
    done = run("shovel", ACTIONS, DLQ, "--where", "bot=", "--yes")
    assert done.code == exit_codes.USAGE == 2
    assert done.stderr.splitlines() == [
        "error: bad predicate: expected a value for bot, found the end at column 5",
        "  bot=",
        "      ^",
    ]
    assert replay.seen == []
    assert audit(run) == []


def test_engine_broker_with_a_predicate_it_cannot_bind_is_exit_2_with_the_reason(
    run: Runner,
) -> None:
    done = run("shovel", ACTIONS, DLQ, "--engine", "broker", "--where", "deliveries>3", "--yes")
    assert done.code == 2
    assert one_error_line(done) == (
        "error: --engine broker cannot run --where 'deliveries>3': 'deliveries >': "
        "comparisons other than = and in need likkerctl to read each message; the broker "
        "selects by = and in on headers only"
    )
    [entry] = audit(run)
    assert (entry["dry_run"], entry["result"]) == (False, "failed")  # refused, not executed
    assert "plan" not in entry["counts"]


def test_shovel_into_its_own_source_is_exit_2(run: Runner, replay: ReplayServer) -> None:
    done = run("shovel", ACTIONS, ACTIONS, "--dry-run")
    assert done.code == 2
    assert one_error_line(done) == "error: source and destination are the same queue"
    assert replay.seen == []


def test_engine_broker_without_the_shovel_plugin_is_exit_6_naming_it(
    run: Runner, replay: ReplayServer
) -> None:
    without_shovel_plugin(replay)
    done = run("shovel", ACTIONS, DLQ, "--engine", "broker", "--where", "bot=1", "--dry-run")
    assert done.code == exit_codes.CONFLICT == 6
    assert one_error_line(done) == (
        "error: the broker has no rabbitmq_shovel plugin enabled, needed for --engine broker "
        "(enable it: rabbitmq-plugins enable rabbitmq_shovel)"
    )


def test_a_config_file_that_is_not_toml_is_exit_2_naming_the_file(
    run: Runner, tmp_path: Path
) -> None:
    bad = tmp_path / "config.toml"
    bad.write_text("[profiles.prod\nmgmt_url = 'x'\n")
    done = run("status", env={"LIKKER_CONFIG": str(bad)})
    assert done.code == 2
    assert one_error_line(done).startswith(f"error: {bad}: not valid TOML: ")


def test_an_unknown_key_in_a_profile_is_exit_2_naming_file_and_key(
    run: Runner, tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[profiles.prod]\nmgmt_uri = 'http://x'\n")
    done = run("status", env={"LIKKER_CONFIG": str(config)})
    assert done.code == 2
    assert one_error_line(done).startswith(
        f"error: {config}: profile 'prod': unknown key(s) mgmt_uri; known: "
    )


def test_an_unknown_profile_is_exit_2_listing_the_known_ones(
    run: Runner, env: dict[str, str | None]
) -> None:
    done = run("--profile", "prod", "status")
    assert done.code == 2
    assert one_error_line(done) == (
        f"error: unknown profile 'prod' (in {env['LIKKER_CONFIG']}); profiles: local"
    )


def test_a_profile_from_the_config_file_is_used_when_named(
    run: Runner, replay: ReplayServer, tmp_path: Path, closed_port_number: int
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        "[profiles.replay]\n"
        f"mgmt_url = '{replay.url}'\n"
        f"amqp_url = 'amqp://guest:guest@127.0.0.1:{closed_port_number}/'\n"
        "mgmt_password = 'guest'\n"
    )
    unset: dict[str, str | None] = {"LIKKER_MGMT_URL": None, "LIKKER_AMQP_URL": None}
    done = run(
        "--profile", "replay", "forecast", "--source", "sampler", "--json",
        env={"LIKKER_CONFIG": str(config), **unset},
    )  # fmt: skip
    assert done.code == 0, done.stderr
    assert done.json["source"] == "sampler"
    assert replay.paths_seen()[0] == "/api/nodes"


# -- bots, through the auth service -------------------------------------------------------
def test_bots_list_without_an_admin_token_is_exit_4(run: Runner, replay: ReplayServer) -> None:
    done = run("bots", "list")
    assert done.code == 4
    assert one_error_line(done) == (
        "error: profile 'local' has no admin token "
        "(admin_token, admin_token_file, or LIKKER_ADMIN_TOKEN)"
    )
    assert replay.seen == []


@pytest.mark.parametrize("kind", ["unknown", "a user's"])
def test_bots_list_with_a_token_the_auth_service_refuses_is_exit_4(
    run: Runner, replay: ReplayServer, kind: str
) -> None:
    token = "not-the-admin-token" if kind == "unknown" else replay.user_token
    done = run("bots", "list", env={"LIKKER_ADMIN_TOKEN": token})
    assert done.code == 4
    assert "refused the admin token" in one_error_line(done)
    assert token not in done.stdout + done.stderr
    assert [s.path for s in replay.seen] == ["/v1/bots"]


def test_bots_list_with_the_auth_service_unreachable_is_exit_3_naming_it(
    run: Runner, replay: ReplayServer
) -> None:
    replay.mode = "closed"
    done = run("bots", "list", env={"LIKKER_AUTH_URL": replay.url, "LIKKER_ADMIN_TOKEN": "t"})
    assert done.code == 3
    assert one_error_line(done) == (
        f"error: auth service unreachable at {replay.url}: ConnectionError"
    )


def test_bots_list_shows_the_recorded_bots(run: Runner, replay: ReplayServer) -> None:
    token = {"LIKKER_ADMIN_TOKEN": replay.admin_token}
    recorded = replay.recordings.body("/v1/bots")["bots"]
    assert {b["blocked"] for b in recorded} == {True, False}  # one of each was recorded

    as_json = run("bots", "list", "--json", env=token)
    assert as_json.code == 0, as_json.stderr
    assert as_json.json == {"bots": recorded}

    table = run("bots", "list", env=token)
    assert table.code == 0
    assert f"{len(recorded)} bot(s)" in table.stdout
    for bot in recorded:
        row = next(line for line in table.stdout.splitlines() if f" {bot['name']} " in line)
        cells = [c.strip() for c in row.strip("│").split("│")]
        assert cells == [
            str(bot["bot_id"]),
            str(bot["user_id"]),
            bot["name"],
            "blocked" if bot["blocked"] else "no",
            bot["blocked_reason"] or "",
        ]


def test_bots_block_of_an_unknown_bot_is_exit_5_naming_it(
    run: Runner, replay: ReplayServer
) -> None:
    token = {"LIKKER_ADMIN_TOKEN": replay.admin_token}
    done = run("bots", "block", "4242", "--reason", "x", "--dry-run", env=token)
    assert done.code == 5
    assert one_error_line(done) == "error: no bot 4242"


def test_bots_block_dry_run_prints_the_plan_and_audits_it_as_a_dry_run(
    run: Runner, replay: ReplayServer
) -> None:
    bot = replay.recordings.recorded["friday_bot"]
    recorded = replay.recordings.body(f"/v1/bots/{bot}")
    token = {"LIKKER_ADMIN_TOKEN": replay.admin_token}
    done = run("bots", "block", str(bot), "--reason", "x", "--dry-run", "--json", env=token)
    assert done.code == 0, done.stderr
    summary = f"Block bot {bot} (owner {recorded['user_id']}, now not blocked)"
    assert done.json == {"dry_run": True, "command": "block", "bot": recorded, "summary": summary}
    assert [s.method for s in replay.seen] == ["GET"]  # nothing was blocked

    [entry] = audit(run)
    assert entry["command"] == "bots block"
    assert entry["params"] == {"bot": bot, "reason": "x"}
    assert (entry["dry_run"], entry["result"], entry["error"]) == (True, "ok", None)
    assert entry["counts"]["plan"]["summary"] == summary


def test_bots_block_with_an_empty_reason_is_exit_2(run: Runner, replay: ReplayServer) -> None:
    done = run("bots", "block", "1", "--reason", "  ", env={"LIKKER_ADMIN_TOKEN": "t"})
    assert done.code == 2
    assert one_error_line(done) == "error: --reason must not be empty"
    assert replay.seen == []


def test_stack_up_without_prometheus_installed_is_exit_6_naming_it_and_starts_nothing(
    run: Runner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    absent = tmp_path / "not-installed" / "prometheus"
    monkeypatch.setattr(prometheus, "BINARY", str(absent))
    state = tmp_path / "state"
    done = run("stack", "up", "--state-dir", str(state))
    assert done.code == 6
    line = one_error_line(done)
    assert line.startswith(f"error: missing: {absent} (apt-get install -y rabbitmq-server "), line
    assert not (state / "pids").exists() or not any((state / "pids").iterdir())


@pytest.mark.parametrize("nodes", ["0", "10"])
def test_stack_up_with_no_nodes_or_too_many_is_exit_2_and_starts_nothing(
    run: Runner, tmp_path: Path, nodes: str
) -> None:
    state = tmp_path / "state"
    done = run("stack", "up", "--nodes", nodes, "--state-dir", str(state))
    assert done.code == 2
    assert one_error_line(done) == f"error: --nodes must be between 1 and 9, not {nodes}"
    assert not state.exists()
