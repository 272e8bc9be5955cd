"""Post a line to a chat incoming-webhook: a runbook step and `likkerctl notify-chat`.

Slack, Mattermost and Rocket.Chat incoming webhooks all take `{"text": "..."}`. The URL is a
secret (anyone holding it can post), so it can come from a file (`url_file`) rather than sit
in the runbook.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import requests
import typer

from likkerctl.sdk import Failed, InvalidInput, Param, RunContext, StepResult

TIMEOUT_S = 5.0


def webhook_url(url: str, url_file: str) -> str:
    if bool(url) == bool(url_file):
        raise InvalidInput("give exactly one of url and url_file")
    if url_file:
        try:
            url = Path(url_file).expanduser().read_text().strip()
        except OSError as exc:
            raise InvalidInput(f"cannot read {url_file}: {exc.strerror}") from exc
    if not url.startswith(("http://", "https://")):
        raise InvalidInput("the chat webhook URL must start with http:// or https://")
    return url


def post(url: str, text: str) -> None:
    try:
        resp = requests.post(url, json={"text": text}, timeout=TIMEOUT_S)
    except requests.RequestException as exc:
        raise Failed(f"chat webhook unreachable: {type(exc).__name__}") from exc
    if resp.status_code >= 300:
        raise Failed(f"chat webhook answered {resp.status_code}: {resp.text[:200]}")


class NotifyChat:
    name = "notify-chat"
    description = "Post a line to a chat incoming-webhook (in observe mode: only recorded)."
    params = {
        "text": Param(
            str,
            "[{mode}] likkerctl runbook {runbook} for {alertname}: {escalation}",
            "the message; runbook placeholders are filled in",
        ),
        "url": Param(str, "", "incoming-webhook URL"),
        "url_file": Param(str, "", "file holding the URL (keeps the secret out of the runbook)"),
    }

    def run(self, ctx: RunContext, params: dict[str, Any]) -> StepResult:
        url = webhook_url(params["url"], params["url_file"])
        # The URL is a secret: the audit log gets where it came from, not the URL.
        where = params["url_file"] or "url in the runbook"
        with ctx.record(self.name, {"text": params["text"], "to": where}) as counts:
            if ctx.dry_run:
                return StepResult("ok", f"would post: {params['text']}")
            post(url, params["text"])
            counts.update(posted=True)
        return StepResult("ok", f"posted: {params['text']}")


def send(
    text: Annotated[str, typer.Argument(help="The message.")],
    url: Annotated[str, typer.Option(help="Incoming-webhook URL.")] = "",
    url_file: Annotated[str, typer.Option(help="File holding the URL.")] = "",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print it; post nothing.")] = False,
) -> None:
    """Post a line to a chat incoming-webhook (to try the URL a runbook will use)."""
    target = webhook_url(url, url_file)
    if dry_run:
        print(f"dry run: would post {text!r}")
        return
    post(target, text)
    print("posted")
