"""Prometheus' query API (prometheus-api-client): the brokers' disk series, per node, and
their quorum queues' Raft log writes (rabbitmq_prometheus' per-object metrics)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_api_client import PrometheusConnect

from likkerctl.core.errors import Unreachable
from likkerctl.core.profile import Profile

# Per queue (the per-object endpoint's labels), per scraped node (`instance`).
RAFT_RATE = (
    'sum by (instance, vhost, queue) (rate(rabbitmq_raft_log_last_written_index{queue!=""}[1m]))'
)
RAFT_RETAINED = (
    "sum by (instance, vhost, queue) "
    '(rabbitmq_raft_log_last_written_index{queue!=""} - rabbitmq_raft_log_snapshot_index)'
)


def _client(profile: Profile) -> PrometheusConnect:
    assert profile.prometheus_url
    return PrometheusConnect(url=profile.prometheus_url, disable_ssl=True, timeout=3)


def _unreachable(profile: Profile, exc: Exception) -> Unreachable:
    return Unreachable(
        f"Prometheus at {profile.prometheus_url} did not answer: {type(exc).__name__}",
        str(profile.prometheus_url),
    )


def raft_log_writes(
    profile: Profile,
) -> tuple[dict[tuple[str, str, str], float], dict[tuple[str, str, str], float]]:
    """(entries/s, retained entries) per (instance, vhost, queue), now; empty when Prometheus
    has no per-queue Raft metrics. Unreachable when it does not answer."""
    client = _client(profile)

    def vector(expr: str) -> dict[tuple[str, str, str], float]:
        return {
            (
                r["metric"].get("instance", "broker"),
                r["metric"].get("vhost", "/"),
                r["metric"]["queue"],
            ): float(r["value"][1])
            for r in client.custom_query(expr)
            if "queue" in r["metric"]
        }

    try:
        return vector(RAFT_RATE), vector(RAFT_RETAINED)
    except Exception as exc:  # the client's own errors, and requests' however wrapped
        raise _unreachable(profile, exc) from exc


def disk_series(
    profile: Profile, window_s: float, step_s: float = 5.0
) -> dict[str, list[tuple[float, float, float]]]:
    """Per-instance disk series from Prometheus; Failed(UNREACHABLE) when it does not answer."""

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
    # The client's own errors, and requests' arriving wrapped in various ways.
    except Exception as exc:
        raise _unreachable(profile, exc) from exc
    out: dict[str, list[tuple[float, float, float]]] = {}
    for instance, points in free.items():
        limits = limit.get(instance, {})
        out[instance] = [(t, v, limits[t]) for t, v in sorted(points.items()) if t in limits]
    return out
