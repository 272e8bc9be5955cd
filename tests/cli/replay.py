"""A replay of recorded management-API and auth-service answers over real HTTP.

The recordings (tests/cli/recordings, made by tests/cli/record.py on a real stack) are served
by path, the query ignored, by a stdlib ThreadingHTTPServer on a free port of 127.0.0.1, so
likkerctl's own `requests` clients, URL building and error handling run unchanged. It answers
as the real servers do (their recorded error bodies):

- `/api/...` needs HTTP basic auth with the recorded user (401 otherwise); an unknown object
  is RabbitMQ's JSON 404.
- `/v1/...` needs the admin bearer token, as auth does: 401 without one or with a token
  never issued, 403 with `user_token` (a user's: known, not allowed); an unknown bot is
  the auth service's JSON 404.
- Only GET is served: anything else is 405, so a dry run that tried to change something fails.

`mode` switches the whole server: "recorded" (the default), "unauthorized" (401 for
everything), or "closed" (`url` then names a port that is bound but not listening, so a
connection is refused: "unreachable"). `override(path, body)` serves a variant answer,
`forget(path)` a 404. `seen` lists the requests received, in order.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import socket
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal

RECORDINGS = Path(__file__).parent / "recordings"
ADMIN_TOKEN = "replay-admin-token-0123456789"
Mode = Literal["recorded", "unauthorized", "closed"]
GONE = object()  # an override that makes a recorded object unknown (404)


@dataclass
class Recordings:
    """The recorded answers: path → JSON body, and the servers' error answers by kind."""

    paths: dict[str, Any]
    errors: dict[str, dict[str, Any]]
    recorded: dict[str, Any]

    @classmethod
    def load(cls, directory: Path = RECORDINGS) -> Recordings:
        index = json.loads((directory / "index.json").read_text())
        paths = {p: json.loads((directory / f).read_text()) for p, f in index["paths"].items()}
        errors = json.loads((directory / index["errors"]).read_text())
        return cls(paths, errors, index["recorded"])

    def body(self, path: str) -> Any:
        """A copy of the recorded answer of `path` (tests edit copies, never the recording)."""
        return copy.deepcopy(self.paths[path])


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]


@dataclass
class ReplayServer:
    recordings: Recordings
    mgmt_user: str = "guest"
    mgmt_password: str = "guest"
    admin_token: str = ADMIN_TOKEN
    user_token: str = "a-users-token-in-the-replay"
    mode: Mode = "recorded"
    overrides: dict[str, Any] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    _httpd: ThreadingHTTPServer | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _closed: socket.socket | None = field(default=None, repr=False)

    # -- lifecycle ------------------------------------------------------------------
    def start(self) -> ReplayServer:
        handler = type("Handler", (_Handler,), {"replay": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="replay-server", daemon=True
        )
        self._thread.start()
        self._closed = closed_port()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._closed is not None:
            self._closed.close()
        self._httpd = self._thread = self._closed = None

    def reset(self) -> None:
        self.mode = "recorded"
        self.overrides.clear()
        self.seen.clear()

    @property
    def url(self) -> str:
        """Where likkerctl should look: this server, or in "closed" mode a refusing port."""
        assert self._httpd is not None and self._closed is not None, "not started"
        sock = self._closed if self.mode == "closed" else self._httpd.socket
        return f"http://127.0.0.1:{sock.getsockname()[1]}"

    def override(self, path: str, body: Any) -> None:
        """Serve `body` for `path` instead of the recording (until reset)."""
        self.overrides[path] = body

    def forget(self, path: str) -> None:
        """Answer `path` as the server does for an object it does not know (until reset)."""
        self.overrides[path] = GONE

    def paths_seen(self) -> list[str]:
        return [s.path for s in self.seen]

    # -- answers --------------------------------------------------------------------
    def answer(self, method: str, path: str, headers: Any) -> tuple[int, Any]:
        errors = self.recordings.errors
        mgmt = path.startswith("/api/")
        if self.mode == "unauthorized":
            return _error(errors["mgmt_unauthorized" if mgmt else "auth_unauthorized"])
        auth = headers.get("Authorization") or ""
        if mgmt:
            wanted = base64.b64encode(f"{self.mgmt_user}:{self.mgmt_password}".encode()).decode()
            if auth != f"Basic {wanted}":
                return _error(errors["mgmt_unauthorized"])
        else:
            if not auth.startswith("Bearer "):
                return _error(errors["auth_unauthorized"])
            if auth == f"Bearer {self.user_token}":
                return _error(errors["auth_forbidden"])
            if auth != f"Bearer {self.admin_token}":
                # Auth's answer to a token it never issued (stack/auth/app.py require_admin).
                return 401, {"error": "unauthenticated", "detail": "unknown bearer token"}
        if method != "GET":
            return 405, {"error": "Method Not Allowed", "reason": "the replay serves GET only"}
        if path in self.overrides and self.overrides[path] is not GONE:
            return 200, copy.deepcopy(self.overrides[path])
        if path in self.recordings.paths and path not in self.overrides:
            return 200, self.recordings.body(path)
        if mgmt:
            return _error(errors["mgmt_not_found"])
        status, body = _error(errors["auth_not_found"])
        bot = re.fullmatch(r"/v1/bots/(\d+)", path)
        recorded_id = str(self.recordings.recorded["unknown_bot"])
        if bot:  # the auth service names the bot it does not know
            body["detail"] = body["detail"].replace(recorded_id, bot.group(1))
        else:
            body = {"detail": "Not Found"}
        return status, body


def _error(recorded: dict[str, Any]) -> tuple[int, Any]:
    return int(recorded["status"]), copy.deepcopy(recorded["body"])


class _Handler(BaseHTTPRequestHandler):
    replay: ReplayServer  # set on the subclass made by ReplayServer.start

    def _serve(self) -> None:
        split = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.replay.seen.append(Seen(self.command, split.path, urllib.parse.parse_qs(split.query)))
        status, body = self.replay.answer(self.command, split.path, self.headers)
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status == 401 and split.path.startswith("/api/"):
            self.send_header("WWW-Authenticate", 'Basic realm="RabbitMQ Management"')
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:  # quiet: pytest shows failures
        pass


def closed_port() -> socket.socket:
    """A socket bound to a free port of 127.0.0.1 and not listening: connecting is refused.

    Holding it keeps any other process from taking the port while a test relies on it.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock
