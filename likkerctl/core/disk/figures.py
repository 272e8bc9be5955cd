"""The forecast's input and answer as plain data (no numpy), for everything that only
reads or shows a forecast."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

Status = Literal["filling", "not filling", "not enough data", "at limit"]
# Where the fitted stretch of samples begins: the start of the window, the last upward step
# (space freed at once), or the last significant change of slope (a fix, an incident).
Regime = Literal["window", "step up", "slope change"]

METHOD = "Theil-Sen slope of headroom (free - limit) since the last step up or slope change"


@dataclass(frozen=True)
class Sample:
    t: float  # seconds (epoch)
    free: float  # bytes free on the broker's data disk
    limit: float  # the broker's disk_free_limit, bytes

    @property
    def headroom(self) -> float:
        return self.free - self.limit


@dataclass(frozen=True)
class Forecast:
    status: Status
    method: str
    window_s: float  # span of the samples used
    points: int
    headroom: float | None = None  # bytes above the limit now (fitted)
    rate: float | None = None  # bytes/s, negative while filling
    rate_low: float | None = None  # confidence interval of the rate
    rate_high: float | None = None
    eta_s: float | None = None  # seconds until the limit
    eta_low_s: float | None = None  # soonest plausible
    eta_high_s: float | None = None  # latest plausible; None: it may never fill
    at: float | None = None  # time of the last sample
    step_cut: bool = False  # samples before a step up were left out
    confidence: float = 0.9
    note: str = ""
    regime_since: float | None = None  # time of the first sample fitted
    regime_reason: Regime | None = None  # why the fit starts there
    bounded_by_bytes: float | None = None  # a saw-tooth: the most headroom falls per tooth

    def as_json(self) -> dict[str, Any]:
        return {k: _round(v) for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Forecast:
        """From `as_json()`; keys this version does not know are ignored, missing ones (a
        recording made before they existed) take their defaults."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _round(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 3)
    return value
