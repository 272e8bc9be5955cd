"""`likkerctl webhook serve` as a real process for tests: own port, token, runbooks, audit DB."""

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
    cli: Cli, tmp: Path, runbooks: str, *args: str, env: dict[str, str] | None = None
) -> Iterator[Webhook]:
    token = secrets.token_urlsafe(24)
    (tmp / "token").write_text(token + "\n")
    (tmp / "runbooks.toml").write_text(runbooks)
    audit_url = f"sqlite:///{tmp / 'likkerctl.db'}"
    port = procs.free_port()
    log = tmp / "webhook.log"
    with open(log, "w") as out:
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
