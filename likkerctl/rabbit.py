"""RabbitMQ access for likkerctl: the management HTTP API and AMQP connections.

Every failure becomes a one-line CliError with its documented exit code: unreachable (names
the URL), authentication refused, unknown queue, missing plugin.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

import pika
import pika.exceptions
import requests
from pika.adapters.blocking_connection import BlockingConnection

from likkerctl.errors import AUTH, CONFLICT, FAILED, NOT_FOUND, UNREACHABLE, CliError
from likkerctl.profile import Profile, redact_url

SHOVEL_PLUGIN = "rabbitmq_shovel"


def q(name: str) -> str:
    """Quote a vhost or object name for a management API path ('/' becomes %2F)."""
    return urllib.parse.quote(name, safe="")


# A queue's instantaneous `rate` flips between its value and 0 from one request to the next
# (RabbitMQ 3.10, quorum queues: stats arrive every 5 s); with a window, each `*_details`
# also carries `avg_rate` over the last 30 s, which is steady.
RATE_WINDOW = {"msg_rates_age": 30, "msg_rates_incr": 5}


class Management:
    """A thin client of the RabbitMQ management API (3.10+), single node or cluster."""

    def __init__(self, profile: Profile, timeout: float = 5.0) -> None:
        self.base = profile.mgmt_url.rstrip("/")
        self.vhost = profile.vhost
        self.http = requests.Session()
        self.http.auth = (profile.mgmt_user, profile.mgmt_password)
        self.timeout = timeout

    def request(self, method: str, path: str, *, not_found: str | None = None, **kw: Any) -> Any:
        url = f"{self.base}/api/{path}"
        try:
            resp = self.http.request(method, url, timeout=kw.pop("timeout", self.timeout), **kw)
        except requests.RequestException as exc:
            raise CliError(
                f"RabbitMQ management API unreachable at {redact_url(self.base)}: "
                f"{type(exc).__name__}",
                UNREACHABLE,
            ) from exc
        if resp.status_code == 401:
            raise CliError(
                f"RabbitMQ management API at {self.base} refused user "
                f"{self.http.auth[0]!r} (check mgmt_user/mgmt_password)",  # type: ignore[index]
                AUTH,
            )
        if resp.status_code == 404 and not_found:
            raise CliError(not_found, NOT_FOUND)
        if resp.status_code >= 400:
            raise CliError(
                f"RabbitMQ management API {method} /api/{path}: HTTP {resp.status_code} "
                f"{resp.text[:200].strip()}",
                FAILED,
            )
        if not resp.content:
            return None
        try:
            return resp.json()
        except ValueError as exc:
            raise CliError(f"{url} did not answer JSON; is it a RabbitMQ management API?") from exc

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    # -- objects -------------------------------------------------------------------
    def overview(self) -> dict[str, Any]:
        return dict(self.get("overview"))

    def nodes(self) -> list[dict[str, Any]]:
        return list(self.get("nodes"))

    def queues(self) -> list[dict[str, Any]]:
        return list(self.get(f"queues/{q(self.vhost)}", params=RATE_WINDOW))

    def queue(self, name: str) -> dict[str, Any]:
        return dict(
            self.get(
                f"queues/{q(self.vhost)}/{q(name)}",
                not_found=f"no queue {name!r} in vhost {self.vhost!r}",
                params=RATE_WINDOW,
            )
        )

    def exchange_exists(self, name: str) -> bool:
        try:
            self.get(f"exchanges/{q(self.vhost)}/{q(name)}", not_found="missing")
        except CliError as exc:
            if exc.code == NOT_FOUND:
                return False
            raise
        return True

    def exchanges(self) -> list[dict[str, Any]]:
        return list(self.get(f"exchanges/{q(self.vhost)}"))

    def bindings_from(self, exchange: str) -> list[dict[str, Any]]:
        return list(self.get(f"exchanges/{q(self.vhost)}/{q(exchange)}/bindings/source"))

    def purge(self, queue: str) -> None:
        self.request(
            "DELETE",
            f"queues/{q(self.vhost)}/{q(queue)}/contents",
            not_found=f"no queue {queue!r} in vhost {self.vhost!r}",
        )

    def delete_exchange(self, name: str) -> None:
        self.request("DELETE", f"exchanges/{q(self.vhost)}/{q(name)}", not_found="gone")

    # -- shovels -------------------------------------------------------------------
    def enabled_plugins(self) -> set[str]:
        plugins: set[str] = set()
        for node in self.nodes():
            plugins.update(node.get("enabled_plugins", []))
        return plugins

    def require_plugin(self, plugin: str, why: str) -> None:
        if plugin not in self.enabled_plugins():
            raise CliError(
                f"the broker has no {plugin} plugin enabled, needed {why} "
                f"(enable it: rabbitmq-plugins enable {plugin})",
                CONFLICT,
            )

    def put_shovel(self, name: str, value: dict[str, Any]) -> None:
        self.request("PUT", f"parameters/shovel/{q(self.vhost)}/{q(name)}", json={"value": value})

    def delete_shovel(self, name: str) -> None:
        try:
            self.request("DELETE", f"parameters/shovel/{q(self.vhost)}/{q(name)}", not_found="x")
        except CliError as exc:
            if exc.code != NOT_FOUND:
                raise

    def shovel_parameters(self) -> list[dict[str, Any]]:
        return list(self.get(f"parameters/shovel/{q(self.vhost)}"))

    def shovels(self) -> list[dict[str, Any]]:
        """Running shovels' status (needs rabbitmq_shovel_management)."""
        return list(self.get(f"shovels/{q(self.vhost)}"))


def connect(profile: Profile) -> BlockingConnection:
    params = pika.URLParameters(profile.amqp_url)
    params.connection_attempts = 1
    params.socket_timeout = 5
    try:
        return BlockingConnection(params)
    except pika.exceptions.ProbableAuthenticationError as exc:
        raise CliError(
            f"RabbitMQ at {redact_url(profile.amqp_url)} refused the login", AUTH
        ) from exc
    except pika.exceptions.ProbableAccessDeniedError as exc:
        raise CliError(
            f"RabbitMQ at {redact_url(profile.amqp_url)} denied access to the vhost", AUTH
        ) from exc
    except (pika.exceptions.AMQPError, OSError) as exc:
        raise CliError(
            f"RabbitMQ unreachable at {redact_url(profile.amqp_url)}: {type(exc).__name__}",
            UNREACHABLE,
        ) from exc
