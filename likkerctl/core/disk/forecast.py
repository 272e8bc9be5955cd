"""When does the broker stop accepting likes? The disk-full forecast, pure and unit-tested.

RabbitMQ blocks every publisher when free disk falls below `disk_free_limit`, so what runs
out is the headroom `free - limit`. From (time, free, limit) samples:

1. Keep the window (default the last 10 minutes).
2. Keep the first sample of each run of equal readings. A broker re-measures its disk every
   few seconds and the management API and Prometheus repeat the last reading in between, so
   a steady fill arrives as a staircase; repeats are the same measurement seen again, and
   fitting them would flatten the slope. (When the last reading has stood much longer than
   the broker's usual re-measuring interval, the disk really stopped falling: it is kept.)
3. Cut at the last upward step: a purge, a compaction or a deleted file frees space at once,
   and what happened before it says nothing about the trend after it. A step is a rise
   between two samples far outside the sample-to-sample noise (robust scale: MAD).
4. Fit the headroom's slope with the Theil-Sen estimator: the median of pairwise slopes,
   robust to noise and to other processes' bursts on a shared disk, with Sen's confidence
   interval for the slope. `theil_sen` is numpy's vectorised form of scipy's
   `stats.theilslopes` (the unit tests check they agree): importing scipy.stats alone
   takes 0.6 s here, more than the whole answer may.
5. The ETA is the fitted headroom now over the fill rate; its range comes from the slope's
   confidence interval. A slope whose interval reaches zero or above is "not filling".
"""

from __future__ import annotations

from collections.abc import Sequence
from statistics import NormalDist

import numpy as np

from likkerctl.core.disk.figures import METHOD, Forecast, Sample

__all__ = ["METHOD", "Forecast", "Sample", "forecast", "theil_sen"]


def last_step_index(headroom: np.ndarray, min_step: float) -> int:
    """Index where the series restarts after its last upward step (0 if none)."""
    if len(headroom) < 3:
        return 0
    diffs = np.diff(headroom)
    mad = float(np.median(np.abs(diffs - np.median(diffs))))
    threshold = max(8 * 1.4826 * mad, min_step)
    ups = np.nonzero(diffs > threshold)[0]
    return int(ups[-1]) + 1 if len(ups) else 0


def theil_sen(y: np.ndarray, x: np.ndarray, alpha: float) -> tuple[float, float, float, float]:
    """(slope, intercept, low_slope, high_slope) as scipy.stats.theilslopes(y, x, alpha)."""
    i, j = np.triu_indices(len(x), k=1)
    dx = x[j] - x[i]
    keep = dx != 0
    slopes = np.sort((y[j] - y[i])[keep] / dx[keep])
    slope = float(np.median(slopes))
    intercept = float(np.median(y) - slope * np.median(x))
    # Sen (1968): ranks of the interval's ends from the variance of Kendall's statistic.
    n, nt = len(x), len(slopes)
    z = NormalDist().inv_cdf(0.5 * (1 - alpha))  # like scipy: alpha is the confidence
    ties = sum(
        float(k * (k - 1) * (2 * k + 5))
        for arr in (x, y)
        for k in np.unique(arr, return_counts=True)[1]
        if k > 1
    )
    sigma = np.sqrt((n * (n - 1) * (2 * n + 5) - ties) / 18.0)
    upper = min(round((nt - z * sigma) / 2.0), nt - 1)
    lower = max(round((nt + z * sigma) / 2.0) - 1, 0)
    return slope, intercept, float(slopes[lower]), float(slopes[upper])


def distinct_readings(t: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First sample of each run of equal values; the last sample too if its run is long."""
    if len(t) < 2:
        return t, h
    first = np.concatenate(([True], h[1:] != h[:-1]))
    tk, hk = t[first], h[first]
    gaps = np.diff(tk)
    usual = float(np.median(gaps)) if len(gaps) else 0.0
    if t[-1] - tk[-1] > 3 * max(usual, 1.0) and t[-1] != tk[-1]:
        tk, hk = np.append(tk, t[-1]), np.append(hk, h[-1])
    return tk, hk


def forecast(
    samples: Sequence[Sample],
    *,
    window_s: float = 600.0,
    min_points: int = 4,
    min_span_s: float = 15.0,
    confidence: float = 0.9,
    min_step: float = 20e6,
) -> Forecast:
    """The ETA to the disk limit from samples (any order); see the module doc."""
    ordered = sorted(samples, key=lambda s: s.t)
    if not ordered:
        return Forecast("not enough data", METHOD, 0.0, 0, note="no samples")
    end = ordered[-1].t
    recent = [s for s in ordered if s.t >= end - window_s]
    t = np.array([s.t for s in recent], dtype=float)
    h = np.array([s.headroom for s in recent], dtype=float)
    raw_t, raw_h = t, h
    t, h = distinct_readings(t, h)
    cut = last_step_index(h, min_step)
    t, h = t[cut:], h[cut:]
    if len(t) < 2 and len(raw_t) >= min_points:
        # One unchanging reading throughout: the disk is not moving at all.
        t, h = raw_t[-min_points:], raw_h[-min_points:]
    base = {"method": METHOD, "at": end, "step_cut": cut > 0, "confidence": confidence}
    if recent[-1].headroom <= 0:
        return Forecast(
            "at limit",
            window_s=float(t[-1] - t[0]) if len(t) else 0.0,
            points=len(t),
            headroom=recent[-1].headroom,
            eta_s=0.0,
            eta_low_s=0.0,
            eta_high_s=0.0,
            note="free disk is at or below the limit: the broker blocks publishers",
            **base,  # type: ignore[arg-type]
        )
    span = float(t[-1] - t[0]) if len(t) else 0.0
    if len(t) < min_points or span < min_span_s:
        return Forecast(
            "not enough data",
            window_s=span,
            points=len(t),
            headroom=recent[-1].headroom,
            note=f"need {min_points} samples over {min_span_s:.0f}s"
            + (" since the last step up" if cut else ""),
            **base,  # type: ignore[arg-type]
        )
    t0 = t[0]
    slope, intercept, low, high = theil_sen(h, t - t0, confidence)
    now = float(intercept + slope * (t[-1] - t0))
    fit = {
        "window_s": span,
        "points": len(t),
        "headroom": now,
        "rate": float(slope),
        "rate_low": float(low),
        "rate_high": float(high),
    }
    if now <= 0:
        return Forecast("at limit", eta_s=0.0, eta_low_s=0.0, eta_high_s=0.0, **fit, **base)  # type: ignore[arg-type]
    if slope >= 0 or high >= 0:
        note = "headroom is steady or growing" if slope >= 0 else "no significant downward trend"
        return Forecast("not filling", note=note, **fit, **base)  # type: ignore[arg-type]
    return Forecast(
        "filling",
        eta_s=now / -slope,
        eta_low_s=now / -low,
        eta_high_s=now / -high,
        **fit,  # type: ignore[arg-type]
        **base,  # type: ignore[arg-type]
    )
