"""RabbitMQ access for likkerctl: the management HTTP API and AMQP connections.

Every failure becomes one of the core's errors, in one line: Unreachable (names the URL),
AuthRefused, NotFound (unknown queue), Conflict (missing plugin), Failed (anything else).
"""

from __future__ import annotations

import contextlib
import logging
import urllib.parse
from typing import Any

import pika
import pika.exceptions
import requests
from pika.adapters.blocking_connection import BlockingConnection

from likkerctl.core.contract.nodes import Nodes
from likkerctl.core.errors import AuthRefused, Conflict, Failed, NotFound, Unreachable
from likkerctl.core.profile import Profile, redact_url

SHOVEL_PLUGIN = "rabbitmq_shovel"
log = logging.getLogger("likkerctl.rabbit")


def q(name: str) -> str:
    """Quote a vhost or object name for a management API path ('/' becomes %2F)."""
    return urllib.parse.quote(name, safe="")


# A queue's instantaneous `rate` flips between its value and 0 from one request to the next
# (RabbitMQ 3.10, quorum queues: stats arrive every 5 s); with a window, each `*_details`
# also carries `avg_rate` over the last 30 s, which is steady.
RATE_WINDOW = {"msg_rates_age": 30, "msg_rates_incr": 5}


def message_rate(stats: dict[str, Any], key: str) -> float:
    """Messages/s of one of a queue's `message_stats` (avg over the requested window)."""
    details = stats.get(f"{key}_details", {})
    return float(details.get("avg_rate", details.get("rate", 0.0)))


class Management:
    """A thin client of the RabbitMQ management API (3.10+), single node or cluster."""

    def __init__(self, profile: Profile, timeout: float = 5.0) -> None:
        # Every node serves the whole cluster's view: the one that answered last goes first.
        self.bases = [u.rstrip("/") for u in profile.mgmt_nodes()]
        self.base = self.bases[0] if self.bases else ""
        self.vhost = profile.vhost
        self.http = requests.Session()
        self.http.auth = (profile.mgmt_user, profile.mgmt_password)
        self.timeout = timeout

    def _send(self, method: str, path: str, **kw: Any) -> requests.Response:
        """The answer of the first node that answers, starting with the last one that did."""
        timeout = kw.pop("timeout", self.timeout)
        start = self.bases.index(self.base) if self.base in self.bases else 0
        failures: list[str] = []
        error: requests.RequestException | None = None
        for base in self.bases[start:] + self.bases[:start]:
            try:
                resp = self.http.request(method, f"{base}/api/{path}", timeout=timeout, **kw)
            except requests.RequestException as exc:
                failures.append(redact_url(base))
                error = exc
                continue
            self.base = base
            return resp
        where = ", ".join(failures) or "(no management URL)"
        raise Unreachable(
            f"RabbitMQ management API unreachable at {where}: {type(error).__name__}", where
        ) from error

    def request(self, method: str, path: str, *, not_found: str | None = None, **kw: Any) -> Any:
        resp = self._send(method, path, **kw)
        url = f"{self.base}/api/{path}"
        if resp.status_code == 401:
            raise AuthRefused(
                f"RabbitMQ management API at {self.base} refused user "
                f"{self.http.auth[0]!r} (check mgmt_user/mgmt_password)",  # type: ignore[index]
                self.base,
            )
        if resp.status_code == 404 and not_found:
            raise NotFound(not_found)
        if resp.status_code >= 400:
            raise Failed(
                f"RabbitMQ management API {method} /api/{path}: HTTP {resp.status_code} "
                f"{resp.text[:200].strip()}",
            )
        if not resp.content:
            return None
        try:
            return resp.json()
        except ValueError as exc:
            raise Failed(f"{url} did not answer JSON; is it a RabbitMQ management API?") from exc

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
        except NotFound:
            return False
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
            raise Conflict(
                f"the broker has no {plugin} plugin enabled, needed {why} "
                f"(enable it: rabbitmq-plugins enable {plugin})",
            )

    def put_shovel(self, name: str, value: dict[str, Any]) -> None:
        self.request("PUT", f"parameters/shovel/{q(self.vhost)}/{q(name)}", json={"value": value})

    def delete_shovel(self, name: str) -> None:
        with contextlib.suppress(NotFound):
            self.request("DELETE", f"parameters/shovel/{q(self.vhost)}/{q(name)}", not_found="x")

    def shovel_parameters(self) -> list[dict[str, Any]]:
        return list(self.get(f"parameters/shovel/{q(self.vhost)}"))

    def shovels(self) -> list[dict[str, Any]]:
        """Running shovels' status (needs rabbitmq_shovel_management)."""
        return list(self.get(f"shovels/{q(self.vhost)}"))


def connect(profile: Profile) -> BlockingConnection:
    """A connection to the first node of the profile that answers."""
    urls = profile.amqp_nodes()
    url = ", ".join(redact_url(u) for u in urls)
    try:
        return Nodes(urls, "likkerctl", log, socket_timeout=5).connect()
    except ValueError as exc:
        raise Unreachable(f"no AMQP URL in profile {profile.name!r}", "") from exc
    except pika.exceptions.ProbableAuthenticationError as exc:
        raise AuthRefused(f"RabbitMQ at {url} refused the login", url) from exc
    except pika.exceptions.ProbableAccessDeniedError as exc:
        raise AuthRefused(f"RabbitMQ at {url} denied access to the vhost", url) from exc
    except (pika.exceptions.AMQPError, OSError) as exc:
        raise Unreachable(f"RabbitMQ unreachable at {url}: {type(exc).__name__}", url) from exc


def ready_count(profile: Profile, queue: str) -> int:
    """The queue's ready messages, exact (queue.declare passive answers from the queue)."""
    conn = connect(profile)
    try:
        return int(conn.channel().queue_declare(queue, passive=True).method.message_count)
    except pika.exceptions.ChannelClosedByBroker as exc:
        raise NotFound(f"no queue {queue!r}", queue) from exc
    finally:
        if conn.is_open:
            conn.close()


def exact_counts(profile: Profile, queues: list[str]) -> dict[str, tuple[int, int]]:
    """(ready, consumers) of each existing queue, over AMQP; unknown queues are left out.

    The management API's queue objects can lag ten seconds behind a quorum queue (a paused
    fleet still showed its consumers); queue.declare(passive) answers from the queue itself.
    """
    if not queues:
        return {}
    counts: dict[str, tuple[int, int]] = {}
    conn = connect(profile)
    try:
        for name in queues:
            try:
                method = conn.channel().queue_declare(name, passive=True).method
            except pika.exceptions.ChannelClosedByBroker:
                continue
            counts[name] = (method.message_count, method.consumer_count)
    finally:
        if conn.is_open:
            conn.close()
    return counts
