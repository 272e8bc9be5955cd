"""Prometheus' query API (prometheus-api-client): the brokers' disk series, per node, and
their quorum queues' Raft log writes (rabbitmq_prometheus' per-object metrics)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
from urllib3.util.retry import Retry

from likkerctl.core.errors import AuthRefused, LikkerError, Unreachable
from likkerctl.core.profile import Profile

# Per queue (the per-object endpoint's labels), per scraped node (`instance`).
RAFT_RATE = (
    'sum by (instance, vhost, queue) (rate(rabbitmq_raft_log_last_written_index{queue!=""}[1m]))'
)
RAFT_RETAINED = (
    "sum by (instance, vhost, queue) "
    '(rabbitmq_raft_log_last_written_index{queue!=""} - rabbitmq_raft_log_snapshot_index)'
)

# Each scraped node's name (`rabbitmq_node`), by `instance`: so Prometheus' answers name
# nodes as the management API and the sampler do, not by host:port.
IDENTITY = "max by (instance, rabbitmq_node) (rabbitmq_identity_info)"


# The client's default retries a dead server for ~6 s (3 tries, backoff 1 s): too long for
# a command on call or a dashboard refresh, which asks again anyway. One quick retry.
RETRY = Retry(total=1, backoff_factor=0.1, status_forcelist=[502, 503, 504])
# prometheus-api-client says a non-200 answer only in its exception's text.
HTTP_STATUS = re.compile(r"HTTP Status Code (\d{3})")


def _client(profile: Profile) -> PrometheusConnect:
    assert profile.prometheus_url
    return PrometheusConnect(url=profile.prometheus_url, disable_ssl=True, timeout=3, retry=RETRY)


def _unreachable(profile: Profile, exc: Exception) -> LikkerError:
    """The error for a query that failed: refused credentials are AuthRefused (a fix in the
    profile, not a retry), an answer other than 200 says its status, the rest did not answer."""
    url = str(profile.prometheus_url)
    status = HTTP_STATUS.search(str(exc)) if isinstance(exc, PrometheusApiClientException) else None
    if status and status.group(1) in ("401", "403"):
        return AuthRefused(f"Prometheus at {url} refused the request: HTTP {status.group(1)}", url)
    if status:
        return Unreachable(f"Prometheus at {url} answered HTTP {status.group(1)}", url)
    return Unreachable(f"Prometheus at {url} did not answer: {type(exc).__name__}", url)


def _node_names(client: PrometheusConnect) -> dict[str, str]:
    """instance -> RabbitMQ node name; an instance without identity keeps its own name."""
    return {
        r["metric"]["instance"]: r["metric"]["rabbitmq_node"]
        for r in client.custom_query(IDENTITY)
        if "instance" in r["metric"] and "rabbitmq_node" in r["metric"]
    }


def raft_log_writes(
    profile: Profile,
) -> tuple[dict[tuple[str, str, str], float], dict[tuple[str, str, str], float]]:
    """(entries/s, retained entries) per (node, vhost, queue), now; empty when Prometheus
    has no per-queue Raft metrics. Unreachable when it does not answer."""
    client = _client(profile)

    def vector(expr: str, names: dict[str, str]) -> dict[tuple[str, str, str], float]:
        return {
            (
                names.get(instance := r["metric"].get("instance", "broker"), instance),
                r["metric"].get("vhost", "/"),
                r["metric"]["queue"],
            ): float(r["value"][1])
            for r in client.custom_query(expr)
            if "queue" in r["metric"]
        }

    try:
        names = _node_names(client)
        return vector(RAFT_RATE, names), vector(RAFT_RETAINED, names)
    except Exception as exc:  # the client's own errors, and requests' however wrapped
        raise _unreachable(profile, exc) from exc


def disk_series(
    profile: Profile, window_s: float, step_s: float = 5.0
) -> dict[str, list[tuple[float, float, float]]]:
    """Per-node disk series from Prometheus; Unreachable when it does not answer."""

    client = _client(profile)
    end = datetime.now(UTC)
    start = end - timedelta(seconds=window_s)

    def query(expr: str) -> dict[str, dict[float, float]]:
        result = client.custom_query_range(
            expr, start_time=start, end_time=end, step=f"{step_s:g}s"
        )
        return {
            r["metric"].get("instance", "broker"): {float(t): float(v) for t, v in r["values"]}
            for r in result
        }

    try:
        free = query("min by (instance) (rabbitmq_disk_space_available_bytes)")
        limit = query("max by (instance) (rabbitmq_disk_space_available_limit_bytes)")
        names = _node_names(client)
    # The client's own errors, and requests' arriving wrapped in various ways.
    except Exception as exc:
        raise _unreachable(profile, exc) from exc
    out: dict[str, list[tuple[float, float, float]]] = {}
    for instance, points in free.items():
        limits = limit.get(instance, {})
        node = names.get(instance, instance)
        out[node] = [(t, v, limits[t]) for t, v in sorted(points.items()) if t in limits]
    return out
