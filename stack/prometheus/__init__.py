"""The stack's Prometheus: scrape config, alert rules (in rules/) and how to run it."""

from __future__ import annotations

import shutil
from pathlib import Path
from string import Template

import requests

from stack.settings import StackSettings

HERE = Path(__file__).parent
BINARY = "/usr/bin/prometheus"


def render_files(settings: StackSettings) -> Path:
    base = settings.state_dir / "prometheus"
    rules = base / "rules"
    (base / "data").mkdir(parents=True, exist_ok=True)
    rules.mkdir(parents=True, exist_ok=True)
    for rule_file in (HERE / "rules").glob("*.yml"):
        shutil.copyfile(rule_file, rules / rule_file.name)
    p = settings.ports
    takers = ", ".join(
        f'"{settings.host}:{settings.taker_port(i)}"' for i in range(1, settings.takers + 1)
    )
    # Every node: a node's disk and alarms are its own, so each alert names its `instance`.
    nodes = ", ".join(
        f'"{settings.host_of(n.part)}:{n.rabbitmq_prometheus}"' for n in settings.broker_nodes
    )
    config = Template((HERE / "prometheus.yml.tmpl").read_text()).substitute(
        host=settings.host,
        rules_dir=rules,
        alertmanager=p.alertmanager,
        rabbitmq_targets=nodes,
        gateway=p.gateway,
        auth=p.auth,
        likes=p.likes,
        taker_targets=takers,
    )
    (base / "prometheus.yml").write_text(config)
    return base


def argv(settings: StackSettings) -> list[str]:
    base = settings.state_dir / "prometheus"
    return [
        BINARY,
        f"--config.file={base / 'prometheus.yml'}",
        f"--storage.tsdb.path={base / 'data'}",
        f"--web.listen-address={settings.host}:{settings.ports.prometheus}",
        "--storage.tsdb.retention.time=2d",
    ]


def ready(settings: StackSettings) -> bool:
    return requests.get(f"{settings.prometheus_url}/-/ready", timeout=2).status_code == 200
