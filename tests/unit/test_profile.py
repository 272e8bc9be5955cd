"""Profiles: the local default, config-file profiles, env overrides, errors, redaction."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from likkerctl.cli.errors import USAGE, exit_code
from likkerctl.core.profile import ConfigError, load_profile, redact_url


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "HOME": str(tmp_path / "home"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "LIKKER_STATE_DIR": str(tmp_path / "state"),
        **extra,
    }


def write_config(tmp_path: Path, text: str) -> None:
    path = tmp_path / "config" / "likkerctl" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_no_config_at_all_targets_the_local_stack_defaults(tmp_path: Path) -> None:
    p = load_profile(environ=env_for(tmp_path))
    assert p.name == "local"
    assert p.mgmt_url == "http://127.0.0.1:15680"
    assert ":5680/" in p.amqp_url
    assert p.admin_token_file == str(tmp_path / "state" / "admin-token")
    assert p.audit_url == f"sqlite:///{tmp_path / 'state' / 'likkerctl.db'}"


def test_local_profile_follows_a_running_stack_settings(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "stack.json").write_text(
        json.dumps({"state_dir": str(state), "ports": {"management": 1234, "amqp": 4321}})
    )
    p = load_profile(environ=env_for(tmp_path))
    assert p.mgmt_url == "http://127.0.0.1:1234" and ":4321/" in p.amqp_url


def test_named_profile_then_environment_overrides(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        'default_profile = "prod"\n'
        "[profiles.prod]\n"
        'amqp_url = "amqps://ops:pw@rabbit.example:5671/likes"\n'
        'mgmt_url = "https://rabbit.example:15671"\n'
        'mgmt_user = "ops"\n'
        'mgmt_password = "pw"\n'
        'dlq = "likes.dlq"\n',
    )
    p = load_profile(environ=env_for(tmp_path))
    assert (p.name, p.dlq, p.mgmt_user) == ("prod", "likes.dlq", "ops")
    assert p.prometheus_url is None and p.auth_url is None
    p = load_profile(environ=env_for(tmp_path, LIKKER_DLQ="other", LIKKER_PROFILE="prod"))
    assert p.dlq == "other" and p.sources["dlq"] == "LIKKER_DLQ"
    assert load_profile("local", environ=env_for(tmp_path)).name == "local"


def test_credentials_in_the_management_url_are_split_out(tmp_path: Path) -> None:
    p = load_profile(environ=env_for(tmp_path, LIKKER_MGMT_URL="http://a%40b:p%3Ass@h:1/"))
    assert (p.mgmt_user, p.mgmt_password, p.mgmt_url) == ("a@b", "p:ss", "http://h:1/")


def test_secrets_are_redacted(tmp_path: Path) -> None:
    p = load_profile(
        environ=env_for(
            tmp_path,
            LIKKER_AMQP_URL="amqp://u:topsecret@h/%2F",
            LIKKER_ADMIN_TOKEN="tok-123",
            LIKKER_AUDIT_DB_URL="postgresql://a:dbpw@db/audit",
        )
    )
    shown = json.dumps(p.redacted())
    for secret in ("topsecret", "tok-123", "dbpw", '"guest"'):
        assert secret not in shown.replace('"mgmt_user": "guest"', "")
    assert redact_url("amqp://u:x@h:1/v") == "amqp://u:***@h:1/v"
    assert redact_url("http://h:1") == "http://h:1"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("[profiles.x\n", "not valid TOML"),
        ("colour = 1\n", "unknown top-level key(s) colour"),
        ("[profiles.x]\namqp_ulr = 'a'\n", "unknown key(s) amqp_ulr"),
        ("[profiles.x]\nvhost = 3\n", "vhost must be a string"),
        ("profiles = 3\n", "must be tables"),
    ],
)
def test_bad_config_files_are_usage_errors(tmp_path: Path, text: str, says: str) -> None:
    write_config(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_profile(environ=env_for(tmp_path))
    assert says in str(info.value) and exit_code(info.value) == USAGE


def test_unknown_profile_lists_the_known_ones(tmp_path: Path) -> None:
    write_config(tmp_path, "[profiles.prod]\namqp_url='amqp://h'\nmgmt_url='http://h'\n")
    with pytest.raises(ConfigError, match=r"unknown profile 'staging'.*local, prod"):
        load_profile("staging", environ=env_for(tmp_path))


def test_a_profile_without_urls_is_an_error(tmp_path: Path) -> None:
    write_config(tmp_path, "[profiles.half]\namqp_url='amqp://h'\n")
    with pytest.raises(ConfigError, match="has no mgmt_url"):
        load_profile("half", environ=env_for(tmp_path))


def test_the_local_profile_keeps_likkerctls_tables_where_the_stack_keeps_its_stores(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    stack = {"state_dir": str(state), "db": "postgresql", "ports": {"postgres": 25432}}
    (state / "stack.json").write_text(json.dumps(stack))
    p = load_profile(environ=env_for(tmp_path))
    assert p.audit_url == "postgresql+psycopg://likker@127.0.0.1:25432/likkerctl"
    assert p.db_url == "postgresql+psycopg://likker@127.0.0.1:25432/likes"

    url = "postgresql+psycopg://app:pw@db.example:5432/likker"
    (state / "stack.json").write_text(json.dumps({"state_dir": str(state), "db_url": url}))
    p = load_profile(environ=env_for(tmp_path))
    assert p.audit_url == p.db_url == url

    # A stack.json written before `db_url` named the likes store's URL `likes_db_url`.
    (state / "stack.json").write_text(json.dumps({"state_dir": str(state), "likes_db_url": url}))
    assert load_profile(environ=env_for(tmp_path)).db_url == url
