"""Plugins of both kinds, found, run, and contained when they fail.

The shipped examples are installed for real: plugins/chat-notify with pip into a temp
directory on PYTHONPATH, plugins/dlq-report as the plugins directory. Broken plugins are
installed the same way pip lays packages out (a module and its .dist-info).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pika
import pytest

from tests.alertmanager_payload import alert, body
from tests.helpers import RunningStack, wait_for
from tests.ops.conftest import Cli, depth
from tests.ops.webhook_proc import webhook

REPO = Path(__file__).resolve().parents[2]
DLQ_REPORT_DIR = REPO / "plugins" / "dlq-report"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """plugins/chat-notify installed by pip, plus two broken plugins, in one directory."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
         str(REPO / "plugins" / "chat-notify")],
        check=True,
    )  # fmt: skip
    install(
        target,
        "broken_plugin",
        "raise ImportError('needs libfoo')\n",
        {"likkerctl.commands": {"broken": "broken_plugin:app"}},
    )
    install(
        target,
        "explosive_plugin",
        "from likkerctl.runbooks.context import Param\n"
        "def boom() -> None:\n    'Always fails.'\n    raise RuntimeError('kaboom')\n"
        "class Explode:\n    name = 'explode'\n    description = 'fails'\n"
        "    params = {'n': Param(int, 1)}\n"
        "    def run(self, ctx, params):\n        raise RuntimeError('step kaboom')\n",
        {
            "likkerctl.commands": {
                "boom": "explosive_plugin:boom",
                "status": "explosive_plugin:boom",
            },
            "likkerctl.steps": {"explode": "explosive_plugin:Explode"},
        },
    )
    return target


def install(target: Path, module: str, source: str, groups: dict[str, dict[str, str]]) -> None:
    """Lay out a package as pip does: the module and its .dist-info with entry_points.txt."""
    (target / f"{module}.py").write_text(source)
    info = target / f"{module.replace('_', '-')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "".join(
            f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) + "\n"
            for group, eps in groups.items()
        )
    )


@pytest.fixture
def env(site: Path, tmp_path: Path) -> dict[str, str]:
    return {"PYTHONPATH": f"{REPO}:{site}", "LIKKER_PLUGINS_DIR": str(DLQ_REPORT_DIR)}


class ChatServer:
    """A chat incoming-webhook: records every JSON body posted to it."""

    def __init__(self) -> None:
        received = self.received = []  # type: list[dict[str, Any]]

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/abc"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def chat() -> Iterator[ChatServer]:
    server = ChatServer()
    yield server
    server.close()


def test_plugins_list_shows_both_kinds_and_where_from(cli: Cli, env: dict[str, str]) -> None:
    run = cli("plugins", "list", "--json", env=env)
    assert run.rc == 0, run.stderr
    rows = {(p["kind"], p["name"]): p for p in run.json["plugins"]}
    assert rows["command", "notify-chat"]["status"] == "ok"
    assert rows["command", "notify-chat"]["source"].startswith("likkerctl-chat-notify 0.1.0")
    assert rows["step", "notify-chat"]["status"] == "ok"
    assert rows["executable", "dlq-report"]["source"] == str(
        DLQ_REPORT_DIR / "likkerctl-dlq-report"
    )
    assert rows["command", "broken"]["status"] == "failed"
    assert rows["command", "broken"]["error"] == "ImportError: needs libfoo"
    assert rows["command", "status"]["error"] == "'status' is a built-in command"
    table = cli("plugins", "list", env=env)
    assert table.rc == 0 and "needs libfoo" in table.stdout


def test_a_broken_plugin_never_breaks_the_tool(cli: Cli, env: dict[str, str]) -> None:
    assert cli("version", env=env).rc == 0
    assert cli("--help", env=env).rc == 0
    run = cli("broken", env=env)
    assert run.rc == 1 and "plugin command 'broken'" in run.stderr
    assert "ImportError: needs libfoo" in run.stderr and "Traceback" not in run.stderr
    boom = cli("boom", env=env)
    assert boom.rc == 1 and "plugin command 'boom' failed: RuntimeError: kaboom" in boom.stderr
    assert "Traceback" not in boom.stderr
    # A built-in name cannot be taken over.
    assert cli("status", "--json", env=env).rc == 0


def test_notify_chat_command_posts_and_dry_runs(
    cli: Cli, env: dict[str, str], chat: ChatServer, tmp_path: Path
) -> None:
    url_file = tmp_path / "chat-url"
    url_file.write_text(chat.url + "\n")
    dry = cli("notify-chat", "hello", "--url-file", str(url_file), "--dry-run", env=env)
    assert dry.rc == 0 and "would post 'hello'" in dry.stdout
    assert chat.received == []
    sent = cli("notify-chat", "hello", "--url", chat.url, env=env)
    assert sent.rc == 0, sent.stderr
    assert chat.received == [{"text": "hello"}]
    bad = cli("notify-chat", "x", env=env)
    assert bad.rc == 2 and "exactly one of url and url_file" in bad.stderr


RUNBOOK = """
[runbooks.chat]
alerts = ["LikkerTestChat"]
target = "chat"

[[runbooks.chat.steps]]
step = "notify-chat"
url = "{url}"
text = "[{{mode}}] {{alertname}} on {{labels[queue]}}"

[[runbooks.chat.steps]]
step = "explode"

[[runbooks.chat.steps]]
step = "notify-chat"
when = "escalated"
url = "{url}"
text = "escalated: {{escalation}}"
"""


@pytest.mark.parametrize("mode", ["observe", "enforce"])
def test_a_plugin_step_in_the_webhook(
    cli: Cli, env: dict[str, str], chat: ChatServer, tmp_path: Path, mode: str
) -> None:
    with webhook(cli, tmp_path, RUNBOOK.format(url=chat.url), "--mode", mode, env=env) as hook:
        a = alert("LikkerTestChat", labels={"queue": "q1"})
        answer = hook.post(body(a)).json()["alerts"][0]
        done = wait_for(lambda: hook.finished(answer["alert"]), 30, 0.3)
        assert done["outcome"] == "failed", done  # the explode step: a plugin's bug
        steps = [(s["step"], s["status"]) for s in done["detail"]["steps"]]
        assert steps == [("notify-chat", "ok"), ("explode", "failed"), ("notify-chat", "ok")]
        assert done["detail"]["steps"][1]["summary"] == "RuntimeError: step kaboom"
        # The webhook is still up and serving.
        second = hook.post(body(alert("Other"))).json()["alerts"][0]
        assert second["action"] == "no runbook"
        audit = hook.audit(answer["alert"])
        assert [e["dry_run"] for e in audit if e["command"] == "notify-chat"] == [
            mode == "observe"
        ] * 2
        assert all(chat.url not in json.dumps(e) for e in audit)  # the URL is a secret
    if mode == "observe":
        assert chat.received == []
    else:
        assert chat.received == [
            {"text": "[enforce] LikkerTestChat on q1"},
            {"text": "escalated: explode: RuntimeError: step kaboom"},
        ]


def test_a_runbook_naming_a_broken_plugins_step_is_refused_at_start(
    cli: Cli, env: dict[str, str], tmp_path: Path
) -> None:
    book = tmp_path / "rb.toml"
    book.write_text("[runbooks.x]\n[[runbooks.x.steps]]\nstep = 'nosuch'\n")
    run = cli("webhook", "check", "--runbooks", str(book), env=env)
    assert run.rc == 2 and "unknown step 'nosuch'" in run.stderr
    assert "explode" in run.stderr  # the known steps include the plugin's


def publish(stack: RunningStack, queue: str, rows: list[tuple[str, dict[str, Any]]]) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(stack.settings.amqp_url))
    ch = conn.channel()
    ch.confirm_delivery()
    for message_id, headers in rows:
        ch.basic_publish(
            "",
            queue,
            b'{"action": "like"}',
            pika.BasicProperties(message_id=message_id, headers=headers, delivery_mode=2),
        )
    conn.close()


def test_dlq_report_groups_dead_letters_by_reason_and_actor(
    cli: Cli, env: dict[str, str], ops_stack: RunningStack, queues: tuple[str, str]
) -> None:
    queue = queues[0]
    bot = {"likker-failure": "forbidden", "likker-bot": 5, "likker-user": 9}
    rows = (
        [(f"f{i}", bot) for i in range(30)]
        + [(f"n{i}", {"likker-failure": "not-found", "likker-user": 3}) for i in range(10)]
        + [(f"u{i}", {"likker-user": 4}) for i in range(2)]
    )  # fmt: skip
    publish(ops_stack, queue, rows)
    run = cli("dlq-report", "--queue", queue, "--json", env=env)
    assert run.rc == 0, run.stderr
    report = run.json
    assert report["read"] == 42
    assert report["by_reason"] == {"forbidden": 30, "not-found": 10, "unknown": 2}
    assert {"reason": "forbidden", "actor": "bot:5", "messages": 30} in report["groups"]
    # Read, not taken: every message is still there.
    assert wait_for(lambda: depth(ops_stack, queue) == 42, 10)
    table = cli("dlq-report", "--queue", queue, env=env)
    assert table.rc == 0 and "forbidden" in table.stdout and "bot:5" in table.stdout
    missing = cli("dlq-report", "--queue", "no.such.queue", env=env)
    assert missing.rc == 5 and "404" in missing.stderr


def write_exe(directory: Path, name: str, text: str) -> Path:
    path = directory / f"likkerctl-{name}"
    path.write_text(text)
    path.chmod(0o755)
    return path


def test_executables_get_the_context_and_their_failures_are_reported(
    cli: Cli, tmp_path: Path
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    write_exe(
        bin_dir,
        "echo",
        f"#!{sys.executable}\nimport json, sys\nctx = json.load(sys.stdin)\n"
        "print(json.dumps({'argv': sys.argv[1:], 'ctx': ctx}))\n",
    )
    write_exe(bin_dir, "fail", "#!/bin/sh\necho 'it broke' >&2\nexit 3\n")
    write_exe(bin_dir, "badshebang", "#!/nonexistent/interpreter\n")
    write_exe(bin_dir, "suicide", "#!/bin/sh\nkill -9 $$\n")
    plugin_dir = tmp_path / "plugins"
    plugin_dir.mkdir()
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "LIKKER_PLUGINS_DIR": str(plugin_dir)}
    run = cli("-p", "local", "echo", "a", "--b", env=env)
    assert run.rc == 0, run.stderr
    out = run.json
    assert out["argv"] == ["a", "--b"]
    assert out["ctx"]["plugin"]["name"] == "echo"
    assert out["ctx"]["profile"]["amqp_url"] == cli.stack.settings.amqp_url
    assert out["ctx"]["profile"]["admin_token"] == cli.stack.settings.admin_token()
    fail = cli("fail", env=env)
    assert fail.rc == 3 and "it broke" in fail.stderr
    bad = cli("badshebang", env=env)
    assert bad.rc == 1 and "could not be started" in bad.stderr
    killed = cli("suicide", env=env)
    assert killed.rc == 1 and "killed by SIGKILL" in killed.stderr
    # The plugins dir wins over PATH; `plugins list` says which one is shadowed.
    write_exe(plugin_dir, "fail", "#!/bin/sh\necho from-plugins-dir\n")
    assert cli("fail", env=env).stdout.strip() == "from-plugins-dir"
    listed = cli("plugins", "list", "--json", env=env).json["plugins"]
    fails = [p for p in listed if p["name"] == "fail"]
    assert [p["status"] for p in fails] == ["ok", "shadowed"]
    unknown = cli("nosuchthing", env=env)
    assert unknown.rc == 2 and "No such command" in unknown.stderr
