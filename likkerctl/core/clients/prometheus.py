"""Prometheus' query API (prometheus-api-client): the brokers' disk series, per node."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_api_client import PrometheusConnect

from likkerctl.core.errors import Unreachable
from likkerctl.core.profile import Profile


def disk_series(
    profile: Profile, window_s: float, step_s: float = 5.0
) -> dict[str, list[tuple[float, float, float]]]:
    """Per-instance disk series from Prometheus; Failed(UNREACHABLE) when it does not answer."""

    assert profile.prometheus_url
    client = PrometheusConnect(url=profile.prometheus_url, disable_ssl=True, timeout=3)
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
        raise Unreachable(
            f"Prometheus at {profile.prometheus_url} did not answer: {type(exc).__name__}",
            profile.prometheus_url,
        ) from exc
    out: dict[str, list[tuple[float, float, float]]] = {}
    for instance, points in free.items():
        limits = limit.get(instance, {})
        out[instance] = [(t, v, limits[t]) for t, v in sorted(points.items()) if t in limits]
    return out
