"""Where the forecast's samples come from: Prometheus, or likkerctl's own sampler.

- **prometheus**: range queries (prometheus-api-client) of the RabbitMQ node's
  `rabbitmq_disk_space_available_bytes` and `..._limit_bytes`, one series per node.
- **sampler**: polls the management API's `/api/nodes` (disk_free, disk_free_limit) and keeps
  the samples in likkerctl's database, so the forecast works with no Prometheus at all. The
  dashboard and the webhook run it continuously; `likkerctl forecast --watch` does too.

`forecast_all()` picks the source (Prometheus when configured and answering), forecasts
each node and returns the soonest ETA as the answer, naming the source used. It reads
`HISTORY_S` of samples (or the window, if longer): the fit uses the window, the saw-tooth of
the WAL's roll-overs is looked for in all of them. It also says which queues write the
broker's log (`attribution.log_writers`), unless asked not to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from likkerctl.core.clients import prometheus
from likkerctl.core.disk.attribution import Attribution, log_writers
from likkerctl.core.disk.forecast import Forecast, Sample, forecast
from likkerctl.core.errors import InvalidInput, LikkerError
from likkerctl.core.profile import Profile

if TYPE_CHECKING:
    from likkerctl.core.disk.sampler import Sampler

SOURCES = ("auto", "prometheus", "sampler")
# Two hours of samples show a WAL roll-over or two at normal traffic: enough to see that
# its growth is bounded (more than the fit's window, which describes the disk now).
HISTORY_S = 7200.0
MAX_POINTS = 10_000  # Prometheus refuses range queries of more than 11,000 points


@dataclass
class DiskForecast:
    source: str
    window_s: float
    nodes: dict[str, Forecast] = field(default_factory=dict)
    fallback_reason: str | None = None
    writers: Attribution | None = None  # None: not asked

    @property
    def answer(self) -> Forecast | None:
        """The node that fills first (or, when none is filling, the first node)."""
        if not self.nodes:
            return None
        filling = [f for f in self.nodes.values() if f.eta_s is not None]
        if filling:
            return min(filling, key=lambda f: f.eta_s or 0.0)
        return next(iter(self.nodes.values()))

    def as_json(self) -> dict[str, Any]:
        answer = self.answer
        return {
            "source": self.source,
            "fallback_reason": self.fallback_reason,
            "window_s": self.window_s,
            "answer": answer.as_json() if answer else None,
            "nodes": {name: f.as_json() for name, f in self.nodes.items()},
            **(
                {
                    "writers": [w.as_json() for w in self.writers.writers],
                    "writers_note": self.writers.note,
                }
                if self.writers is not None
                else {}
            ),
        }


def forecast_all(
    profile: Profile,
    source: str = "auto",
    window_s: float = 600.0,
    sampler: Sampler | None = None,
    writers: bool = True,
) -> DiskForecast:
    result = _forecast_nodes(profile, source, window_s, sampler)
    if writers:
        # The writers come from where the disk figures came from: no second wait for a
        # Prometheus that just failed, and none asked at all for `--source sampler`.
        skip = None
        if result.source == "sampler":
            skip = result.fallback_reason or "the disk figures came from the sampler"
        result.writers = log_writers(profile, prometheus_note=skip)
    return result


def _forecast_nodes(
    profile: Profile, source: str, window_s: float, sampler: Sampler | None
) -> DiskForecast:
    if source not in SOURCES:
        raise InvalidInput(f"--source must be one of {', '.join(SOURCES)}")
    if source == "prometheus" and not profile.prometheus_url:
        raise InvalidInput(f"profile {profile.name!r} has no prometheus_url")
    history_s = max(window_s, HISTORY_S)
    fallback = None
    if source in ("auto", "prometheus") and profile.prometheus_url:
        try:
            step_s = max(5.0, history_s / MAX_POINTS)
            series = {
                node: [Sample(*point) for point in points]
                for node, points in prometheus.disk_series(profile, history_s, step_s).items()
            }
            if series or source == "prometheus":
                return DiskForecast(
                    "prometheus",
                    window_s,
                    {n: forecast(s, window_s=window_s) for n, s in series.items()},
                )
            fallback = "Prometheus has no RabbitMQ disk metrics"
        except LikkerError as exc:
            if source == "prometheus":
                raise
            fallback = str(exc)
    elif source == "auto":
        fallback = "no prometheus_url in the profile"
    if sampler is None:
        from likkerctl.core.disk.sampler import Sampler  # SQLAlchemy: only when it is the source

        sampler = Sampler(profile)
    sampler.poll()
    series = sampler.series(history_s)
    return DiskForecast(
        "sampler",
        window_s,
        {n: forecast(s, window_s=window_s) for n, s in series.items()},
        fallback_reason=fallback,
    )
