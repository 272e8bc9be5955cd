"""The stack's Alertmanager: routes every alert to likkerctl's webhook with a bearer token."""

from __future__ import annotations

from pathlib import Path
from string import Template

import requests

from stack.settings import StackSettings

HERE = Path(__file__).parent
BINARY = "/usr/bin/prometheus-alertmanager"


def render_files(settings: StackSettings) -> Path:
    base = settings.state_dir / "alertmanager"
    (base / "data").mkdir(parents=True, exist_ok=True)
    config = Template((HERE / "alertmanager.yml.tmpl").read_text()).substitute(
        host=settings.host,
        webhook=settings.ports.webhook,
        webhook_token_file=settings.webhook_token_file,
    )
    (base / "alertmanager.yml").write_text(config)
    return base


def argv(settings: StackSettings) -> list[str]:
    base = settings.state_dir / "alertmanager"
    return [
        BINARY,
        f"--config.file={base / 'alertmanager.yml'}",
        f"--storage.path={base / 'data'}",
        f"--web.listen-address={settings.host}:{settings.ports.alertmanager}",
        "--cluster.listen-address=",  # no gossip: a single private instance
    ]


def ready(settings: StackSettings) -> bool:
    return requests.get(f"{settings.alertmanager_url}/-/ready", timeout=2).status_code == 200
