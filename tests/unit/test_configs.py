"""Static checks of the files that run the stack elsewhere: Dockerfile, compose, and the
Prometheus/Alertmanager configs, validated by the real promtool and amtool."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import dockerfile
import pytest
import yaml
from sqlalchemy.engine import make_url

from stack import alertmanager, broker, prometheus
from stack.settings import StackSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "stack" / "compose.yaml"


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def test_dockerfile_is_slim_non_root_and_installs_the_package() -> None:
    commands = dockerfile.parse_file(str(ROOT / "Dockerfile"))
    by_cmd = [(c.cmd, c.value) for c in commands]
    froms = [v[0] for cmd, v in by_cmd if cmd == "FROM"]
    assert froms and all("slim" in f for f in froms), froms
    users = [v[0] for cmd, v in by_cmd if cmd == "USER"]
    assert users and users[-1] not in ("root", "0"), users
    last_user = max(i for i, (cmd, _) in enumerate(by_cmd) if cmd == "USER")
    assert all(cmd not in ("RUN", "COPY", "ADD") for cmd, _ in by_cmd[last_user:])
    runs = " ".join(v[0] for cmd, v in by_cmd if cmd == "RUN")
    assert re.search(r"pip install [^&]*\.", runs)
    assert "ADD" not in [cmd for cmd, _ in by_cmd]  # COPY only: no remote fetches
    for cmd, value in by_cmd:
        if cmd == "COPY":
            for src in value[:-1]:
                assert (ROOT / src).exists(), f"COPY source {src} missing"
    entry = [v for cmd, v in by_cmd if cmd == "ENTRYPOINT"]
    assert entry == [("likkerctl",)]


def test_compose_runs_every_part_with_files_that_exist() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    settings = StackSettings.load(ROOT / "stack" / "compose" / "stack.json")
    wanted = {
        "rabbitmq",
        "prometheus",
        "alertmanager",
        "auth",
        "likes",
        "gateway",
        "webhook",
        *settings.taker_ids,
    }
    assert wanted <= set(services)
    # Every hostname the services are told to use is a compose service.
    assert set(settings.hosts.values()) <= set(services)
    # The stores are on the compose PostgreSQL, likkerctl's webhook's tables too.
    db = make_url(settings.likes_store_url)
    assert settings.auth_store_url == settings.likes_store_url
    assert (db.drivername, db.host, db.port) == ("postgresql+psycopg", "postgres", 5432)
    pg = services[db.host]
    assert pg["environment"]["POSTGRES_USER"] == db.username
    assert pg["environment"]["POSTGRES_PASSWORD"] == db.password
    assert pg["environment"]["POSTGRES_DB"] == db.database
    assert "pg_isready" in pg["healthcheck"]["test"]
    assert services["auth"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    webhook_env = services["webhook"]["environment"]
    assert webhook_env["LIKKER_AUDIT_DB_URL"] == webhook_env["LIKKER_DB_URL"]
    assert webhook_env["LIKKER_AUDIT_DB_URL"] == settings.audit_store_url
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (COMPOSE.parent / source).exists(), f"{name}: {source} missing"
        cmd = service.get("command", [])
        if cmd and str(cmd[0]).startswith("stack."):
            module = ROOT / cmd[0].replace(".", "/")
            assert module.with_suffix(".py").exists() or (module / "__main__.py").exists(), cmd
            if name.startswith("taker-"):
                assert cmd[2] == name
        if cmd and cmd[0] == "likkerctl":
            # The webhook's command line is one the CLI accepts.
            from typer.testing import CliRunner

            from likkerctl.cli.main import app

            help_run = CliRunner().invoke(app, [*cmd[1:3], "--help"])
            assert help_run.exit_code == 0, help_run.output
            for option in (a for a in cmd[3:] if a.startswith("--")):
                assert option in help_run.output, (name, option)


@pytest.mark.parametrize("path", ["stack/compose/prometheus.yml"])
def test_compose_prometheus_config_passes_promtool(path: str) -> None:
    result = _run("promtool", "check", "config", "--syntax-only", str(ROOT / path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_alertmanager_config_passes_amtool() -> None:
    result = _run("amtool", "check-config", str(ROOT / "stack/compose/alertmanager.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_rendered_local_configs_pass_promtool_and_amtool(tmp_path: Path) -> None:
    settings = StackSettings(state_dir=tmp_path)
    prom_dir = prometheus.render_files(settings)
    am_dir = alertmanager.render_files(settings)
    settings.webhook_token_file.write_text("t\n")
    result = _run("promtool", "check", "config", str(prom_dir / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr
    rules = sorted((prom_dir / "rules").glob("*.yml"))
    assert rules
    result = _run("promtool", "check", "rules", *map(str, rules))
    assert result.returncode == 0, result.stdout + result.stderr
    result = _run("amtool", "check-config", str(am_dir / "alertmanager.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_broker_keeps_rabbitmqs_wal_size_unless_told(tmp_path: Path) -> None:
    """The incident's disk alert is the 512 MiB WAL's climb (docs/STACK.md): the default
    config leaves it alone; `raft_wal_max_bytes` (the soak bench) sets it."""
    default = (
        broker.render_files(StackSettings(state_dir=tmp_path / "a")) / "rabbitmq.conf"
    ).read_text()
    assert "raft." not in default
    assert "disk_free_limit.absolute = 50000000\n" in default
    small = StackSettings(state_dir=tmp_path / "b", raft_wal_max_bytes=32_000_000)
    lines = (broker.render_files(small) / "rabbitmq.conf").read_text().splitlines()
    assert "raft.wal_max_size_bytes = 32000000" in lines


def test_the_broker_runs_every_collection_full_here_and_under_compose(tmp_path: Path) -> None:
    """ERL_FULLSWEEP_AFTER=0 for the stack's broker nodes (docs/STACK.md); None leaves
    Erlang's default, and compose's nodes run as `stack up` does."""
    settings = StackSettings(state_dir=tmp_path, nodes=3)
    assert settings.broker_fullsweep_after == 0
    for node in settings.broker_nodes:
        assert broker.node_env(settings, node)["ERL_FULLSWEEP_AFTER"] == "0"
    erlangs = StackSettings(state_dir=tmp_path, broker_fullsweep_after=None)
    # Not set by us (whatever the caller's environment has passes through, as for the rest).
    assert broker.node_env(erlangs).get("ERL_FULLSWEEP_AFTER") == os.environ.get(
        "ERL_FULLSWEEP_AFTER"
    )
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    brokers = [s for s in services.values() if str(s.get("image", "")).startswith("rabbitmq")]
    assert len(brokers) == 3
    assert all(b["environment"]["ERL_FULLSWEEP_AFTER"] == "0" for b in brokers)


def test_settings_round_trip_through_json(tmp_path: Path) -> None:
    settings = StackSettings(state_dir=tmp_path, takers=3, hosts={"auth": "a"})
    settings.save()
    loaded = StackSettings.load(settings.settings_file)
    assert loaded == settings
    assert json.loads(settings.settings_file.read_text())["takers"] == 3
    assert loaded.auth_url.startswith("http://a:")


def test_alert_rules_fire_when_they_should_and_not_otherwise() -> None:
    """promtool's rule unit tests: falling vs slow vs flat disk, a redelivery storm, no
    consumers, takers paused, a growing DLQ (tests/unit/likker.rules.test.yml)."""
    result = _run("promtool", "test", "rules", str(ROOT / "tests/unit/likker.rules.test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def _conf(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs if not k.strip().startswith("#")}


def test_compose_runs_a_three_node_cluster_that_forms_at_boot() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    settings = StackSettings.load(ROOT / "stack" / "compose" / "stack.json")
    nodes = settings.broker_nodes
    assert len(nodes) == 3
    names, cookies = [], set()
    for node in nodes:
        service = services[node.part]
        (conf_mount,) = [v for v in service["volumes"] if v.endswith("/20-likker.conf:ro")]
        conf = _conf(COMPOSE.parent / conf_mount.split(":")[0])
        # The ports the clients are told (stack.json) are the ones the node listens on.
        assert conf["listeners.tcp.default"] == str(node.amqp)
        assert conf["management.tcp.port"] == str(node.management)
        assert conf["prometheus.tcp.port"] == str(node.rabbitmq_prometheus)
        assert settings.host_of(node.part) == service["hostname"] == node.part
        env = service["environment"]
        names.append(env["RABBITMQ_NODENAME"])
        cookies.add(env["RABBITMQ_ERLANG_COOKIE"])
        peers = sorted(v for k, v in conf.items() if k.startswith("cluster_formation.classic"))
        assert conf["cluster_formation.peer_discovery_backend"] == "classic_config"
        assert peers == sorted(f"rabbit@{n.part}" for n in nodes)
        assert set(services["gateway"]["depends_on"]) >= {n.part for n in nodes}
    assert names == [f"rabbit@{n.part}" for n in nodes] and len(cookies) == 1
    # Clients and Prometheus know every node.
    webhook_env = services["webhook"]["environment"]
    assert (
        webhook_env["LIKKER_AMQP_URL"].count(",") == webhook_env["LIKKER_MGMT_URL"].count(",") == 2
    )
    prom = yaml.safe_load((ROOT / "stack/compose/prometheus.yml").read_text())
    (job,) = [j for j in prom["scrape_configs"] if j["job_name"] == "rabbitmq"]
    assert job["static_configs"][0]["targets"] == [
        f"{n.part}:{n.rabbitmq_prometheus}" for n in nodes
    ]
