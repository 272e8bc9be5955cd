"""Commands that need no server: `config show`, `help-predicates`, `webhook check`, `version`;
and the rows `status` computes from the replayed management API (the stable --json fields)."""

from __future__ import annotations

import re
import tomllib
from importlib import resources
from pathlib import Path

import pytest

import likkerctl
from likkerctl.core import status
from likkerctl.core.clients import rabbit
from likkerctl.core.messages import fields, predicate
from likkerctl.core.profile import Profile
from tests.cli.conftest import Runner
from tests.cli.replay import ReplayServer
from tests.cli.test_status_recorded import NODE_KEYS, QUEUE_KEYS

SECRETS = {
    "LIKKER_AMQP_URL": "amqp://ops:amqp%40pw-1@rabbit.example:5671/likes",
    "LIKKER_MGMT_URL": "https://ops:mgmt-pw-2@rabbit.example:15671",
    "LIKKER_ADMIN_TOKEN": "admin-token-3",
    "LIKKER_AUDIT_DB_URL": "postgresql+psycopg://audit:audit-pw-4@db.example/likkerctl",
    "LIKKER_DB_URL": "postgresql+psycopg://likes:likes-pw-5@db.example/likes",
    "LIKKER_PROMETHEUS_URL": "https://prom:prom-pw-6@prometheus.example",
    "LIKKER_ALERTMANAGER_URL": "https://am:am-pw-7@alertmanager.example",
    "LIKKER_AUTH_URL": "https://auth:auth-pw-8@auth.example",
}
SECRET_TEXTS = [
    "amqp%40pw-1",
    "amqp@pw-1",
    "mgmt-pw-2",
    "admin-token-3",
    "audit-pw-4",
    "likes-pw-5",
    "prom-pw-6",
    "am-pw-7",
    "auth-pw-8",
]


# -- config show ---------------------------------------------------------------------------
def test_config_show_json_hides_every_password_and_token(run: Runner) -> None:
    done = run("config", "show", "--json", env=SECRETS)
    assert done.code == 0, done.stderr
    for secret in SECRET_TEXTS:
        assert secret not in done.stdout + done.stderr, secret
    doc = done.json
    assert doc["amqp_url"] == "amqp://ops:***@rabbit.example:5671/likes"
    assert doc["mgmt_url"] == "https://rabbit.example:15671"  # credentials moved out of it
    assert (doc["mgmt_user"], doc["mgmt_password"], doc["admin_token"]) == ("ops", "***", "***")
    assert doc["audit_db_url"] == "postgresql+psycopg://audit:***@db.example/likkerctl"
    assert doc["sources"]["admin_token"] == "LIKKER_ADMIN_TOKEN"
    assert doc["sources"]["mgmt_url"] == "LIKKER_MGMT_URL"


def test_config_show_for_people_hides_them_too(run: Runner) -> None:
    done = run("config", "show", env=SECRETS)
    assert done.code == 0, done.stderr
    for secret in SECRET_TEXTS:
        assert secret not in done.stdout, secret
    assert re.search(r"^mgmt_password +\*\*\*$", done.stdout, re.M)
    assert re.search(r"^admin_token +\*\*\*$", done.stdout, re.M)


def test_config_show_names_the_config_file_and_the_profile_from_it(
    run: Runner, tmp_path: Path
) -> None:
    config = tmp_path / "likker.toml"
    config.write_text(
        'default_profile = "prod"\n[profiles.prod]\n'
        'mgmt_url = "https://rabbit.example:15671"\n'
        'amqp_url = "amqps://ops:file-pw-9@rabbit.example/likes"\n'
        'vhost = "likes"\n'
    )
    unset: dict[str, str | None] = {"LIKKER_MGMT_URL": None, "LIKKER_AMQP_URL": None}
    done = run("config", "show", "--json", env={"LIKKER_CONFIG": str(config), **unset})
    assert done.code == 0, done.stderr
    assert "file-pw-9" not in done.stdout
    assert (done.json["name"], done.json["vhost"]) == ("prod", "likes")
    assert done.json["sources"]["vhost"] == str(config)
    human = run("config", "show", env={"LIKKER_CONFIG": str(config), **unset})
    assert f"config file        {config}" in human.stdout.splitlines()


# -- help, runbooks, version ------------------------------------------------------------------
def test_help_predicates_prints_the_grammar_and_every_field(run: Runner) -> None:
    done = run("help-predicates")
    assert done.code == 0
    for rule in ("predicate  := clause", "comparison := FIELD OP VALUE", "OP         := ="):
        assert rule in done.stdout
    lines = done.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if "FIELD      :=" in line)
    block = " ".join(lines[start : start + 4])
    for name in (*fields.LIKKER_ALIASES, *fields.COMPUTED, "header.NAME", "body.PATH"):
        assert name in block, name
    issue_properties = "routing_key exchange message_id correlation_id type app_id content_type"
    for name in (*issue_properties.split(), "priority", "timestamp", "size"):
        assert name in block and name in fields.PROPERTIES, name
    # and every example it gives parses
    for example in re.findall(r"`([^`]+)`", done.stdout.split("Examples:")[1].split("\n\n")[0]):
        predicate.parse(example)


def test_webhook_check_json_lists_the_builtin_runbooks_as_the_file_says(run: Runner) -> None:
    builtin = tomllib.loads(
        resources.files("likkerctl.runbooks").joinpath("default.toml").read_text()
    )
    done = run("webhook", "check", "--json")
    assert done.code == 0, done.stderr
    doc = done.json
    assert doc["source"] == "built-in default"
    assert doc["max_runs_per_hour"] == builtin["max_runs_per_hour"]
    assert list(doc["runbooks"]) == list(builtin["runbooks"])
    for name, book in builtin["runbooks"].items():
        assert doc["runbooks"][name]["alerts"] == book["alerts"]
        assert [s["step"] for s in doc["runbooks"][name]["steps"]] == [
            s["step"] for s in book["steps"]
        ]


def test_webhook_check_of_a_runbook_with_an_unknown_step_is_exit_2_naming_it(
    run: Runner, tmp_path: Path
) -> None:
    book = tmp_path / "runbooks.toml"
    book.write_text(
        '[runbooks.x]\nalerts = ["A"]\ntarget = "q"\n[[runbooks.x.steps]]\nstep = "nap"\n'
    )
    done = run("webhook", "check", "--runbooks", str(book))
    assert done.code == 2
    assert done.stderr.startswith(f"error: {book}: runbooks.x.steps[0]: unknown step 'nap'; known:")


def test_version_prints_the_package_version(run: Runner) -> None:
    done = run("version")
    assert (done.code, done.stdout) == (0, f"{likkerctl.__version__}\n")
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", likkerctl.__version__)


def test_an_unknown_command_is_a_usage_error(run: Runner) -> None:
    done = run("frobnicate")
    assert done.code == 2
    assert "No such command 'frobnicate'" in done.stderr
    assert "Traceback" not in done.stderr


# -- rows computed from the management API -----------------------------------------------
@pytest.fixture
def profile(replay: ReplayServer, closed_port_number: int, tmp_path: Path) -> Profile:
    return Profile(
        name="replay",
        amqp_url=f"amqp://guest:guest@127.0.0.1:{closed_port_number}/",
        mgmt_url=replay.url,
        state_dir=str(tmp_path),
    )


def test_node_rows_from_the_management_api_have_the_stable_fields(
    profile: Profile, replay: ReplayServer
) -> None:
    [node] = replay.recordings.body("/api/nodes")
    [row] = status.node_rows(profile)
    assert set(row) == NODE_KEYS
    assert row["disk_headroom"] == node["disk_free"] - node["disk_free_limit"]
    assert (row["running"], row["disk_alarm"]) == (True, False)


def test_queue_rows_from_the_management_api_have_the_stable_fields_and_30s_averages(
    profile: Profile, replay: ReplayServer
) -> None:
    # status.queue_rows would then ask AMQP for exact counts: the rows as computed before.
    listed = rabbit.Management(profile).queues()
    assert replay.seen[-1].query == {"msg_rates_age": ["30"], "msg_rates_incr": ["5"]}
    rows = {q["name"]: status.queue_row(q) for q in listed}
    assert all(set(r) == QUEUE_KEYS for r in rows.values())
    listed_recorded = replay.recordings.body("/api/queues/%2F")
    recorded = next(q for q in listed_recorded if q["name"] == profile.actions_queue)
    actions = rows[profile.actions_queue]
    stats = recorded["message_stats"]
    assert actions["ready"] == recorded["messages_ready"] > 0
    assert actions["publish_rate"] == stats["publish_details"]["avg_rate"]
    assert actions["redeliver_rate"] == stats["redeliver_details"]["avg_rate"] > 0
    # the instantaneous rate flips between its value and 0: the average is what is shown
    assert stats["redeliver_details"]["avg_rate"] != stats["redeliver_details"]["rate"]
    # exclusive reply queues (the takers' control queues) are listed by the API, not shown
    assert any(q.get("exclusive") for q in listed_recorded)
