"""`likkerctl webhook serve` as a real process for tests: own port, token, runbooks, audit DB;
and a private Alertmanager that delivers to it."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from likkerctl.core.store.audit import entries
from likkerctl.webhook.ledger import Ledger
from stack import procs
from tests.helpers import wait_for
from tests.ops.conftest import Cli


@dataclass
class Webhook:
    url: str
    token: str
    audit_url: str
    proc: subprocess.Popen[str]
    log: Path

    def post(self, body: bytes, token: str | None = "", **kw: Any) -> requests.Response:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token or self.token}"
        return requests.post(f"{self.url}/alerts", data=body, headers=headers, timeout=30, **kw)

    def ledger(self, alert: str | None = None) -> list[dict[str, Any]]:
        return Ledger(self.audit_url).recent(1000, alert)

    def audit(self, alert: str | None = None) -> list[dict[str, Any]]:
        return entries(self.audit_url, 1000, alert=alert)

    def finished(self, alert: str) -> dict[str, Any] | None:
        rows = [r for r in self.ledger(alert) if r["status"] == "firing"]
        return rows[0] if rows and rows[0]["outcome"] not in ("queued", "running") else None


@contextmanager
def webhook(
    cli: Cli,
    tmp: Path,
    runbooks: str,
    *args: str,
    env: dict[str, str] | None = None,
    port: int | None = None,
    token: str | None = None,
) -> Iterator[Webhook]:
    token = token or secrets.token_urlsafe(24)
    (tmp / "token").write_text(token + "\n")
    (tmp / "runbooks.toml").write_text(runbooks)
    audit_url = f"sqlite:///{tmp / 'likkerctl.db'}"
    port = port or procs.free_port()
    log = tmp / "webhook.log"
    with open(log, "a") as out:
        proc = subprocess.Popen(
            cli.argv(
                "webhook", "serve", "--port", str(port), "--token-file", str(tmp / "token"),
                "--runbooks", str(tmp / "runbooks.toml"), *args,
            ),
            env=cli.env | {"LIKKER_AUDIT_DB_URL": audit_url} | (env or {}),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        up = wait_for(lambda: _healthy(url) or proc.poll() is not None, 30, 0.2)
        assert up and proc.poll() is None, log.read_text()
        yield Webhook(url, token, audit_url, proc, log)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _healthy(url: str) -> bool:
    try:
        return requests.get(f"{url}/healthz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


AM_CONFIG = """
route:
  receiver: webhook
  group_by: ['...']   # every alert its own notification, at once
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 1h
receivers:
  - name: webhook
    webhook_configs:
      - url: "http://127.0.0.1:{port}/alerts"
        send_resolved: false
        http_config:
          authorization:
            type: Bearer
            credentials_file: "{token_file}"
"""


@dataclass
class Alertmanager:
    """A private, real Alertmanager delivering to a webhook on `webhook_port` with `token`."""

    url: str
    webhook_port: int
    token: str
    proc: subprocess.Popen[bytes]

    def fire(self, name: str, labels: dict[str, str]) -> None:
        alert = {"labels": {"alertname": name, **labels}, "annotations": {"summary": name}}
        resp = requests.post(f"{self.url}/api/v2/alerts", json=[alert], timeout=10)
        resp.raise_for_status()

    def alerts(self, **labels: str) -> list[dict[str, Any]]:
        """Active alerts with these labels (what the runbooks posted: pages)."""
        filters = [f'{k}="{v}"' for k, v in labels.items()]
        resp = requests.get(f"{self.url}/api/v2/alerts", params={"filter": filters}, timeout=10)
        resp.raise_for_status()
        return list(resp.json())


@contextmanager
def alertmanager(tmp: Path) -> Iterator[Alertmanager]:
    """Alertmanager 0.25 from Debian, own port, config and storage; stopped by pid."""
    tmp.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(24)
    (tmp / "am-token").write_text(token)
    webhook_port, port = procs.free_port(), procs.free_port()
    config = tmp / "alertmanager.yml"
    config.write_text(AM_CONFIG.format(port=webhook_port, token_file=tmp / "am-token"))
    with open(tmp / "alertmanager.log", "w") as out:
        proc = subprocess.Popen(
            [
                "/usr/bin/prometheus-alertmanager", f"--config.file={config}",
                f"--storage.path={tmp / 'am-data'}",
                f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        up = wait_for(lambda: _ready(url) or proc.poll() is not None, 30, 0.2)
        assert up and proc.poll() is None, (tmp / "alertmanager.log").read_text()
        yield Alertmanager(url, webhook_port, token, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _ready(url: str) -> bool:
    try:
        return requests.get(f"{url}/-/ready", timeout=2).status_code == 200
    except requests.RequestException:
        return False
