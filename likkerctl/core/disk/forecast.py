"""When does the broker stop accepting likes? The disk-full forecast, pure and unit-tested.

RabbitMQ blocks every publisher when free disk falls below `disk_free_limit`, so what runs
out is the headroom `free - limit`. From (time, free, limit) samples:

1. Keep the window (default the last 10 minutes).
2. Keep the first sample of each run of equal readings. A broker re-measures its disk every
   few seconds and the management API and Prometheus repeat the last reading in between, so
   a steady fill arrives as a staircase; repeats are the same measurement seen again, and
   fitting them would flatten the slope. (When the last reading has stood much longer than
   the broker's usual re-measuring interval, the disk really stopped falling: it is kept.)
3. Fit the current regime only:
   - cut at the last upward step: a purge, a compaction or a deleted file frees space at
     once, and what happened before it says nothing about the trend after it. A step is a
     rise between two samples far outside the sample-to-sample noise (robust scale: MAD);
   - then cut at the last change of slope (`slope_change_index`): a fix that stops a
     requeue loop, or an incident that starts, changes how fast headroom falls without a
     step. Each possible split into an earlier and a later line is tried; a split counts
     only when each side's Theil-Sen slope lies outside the other side's 95% interval, the
     slopes differ by a third of the larger one (and by `min_rate_change`), and each side
     has `min_regime_points` readings over `min_regime_s`. Of those, the split that leaves
     the smallest absolute residuals wins, if two lines explain the samples better than one
     by `SPLIT_PENALTY` times what the Bayesian information criterion asks of the extra
     parameters (Laplace errors: a robust likelihood); then the later side is searched again.
4. Fit the headroom's slope with the Theil-Sen estimator: the median of pairwise slopes,
   robust to noise and to other processes' bursts on a shared disk, with Sen's confidence
   interval for the slope. `theil_sen` is numpy's vectorised form of scipy's
   `stats.theilslopes` (the unit tests check they agree): importing scipy.stats alone
   takes 0.6 s here, more than the whole answer may.
5. The ETA is the fitted headroom now over the fill rate; its range comes from the slope's
   confidence interval. A slope whose interval reaches zero or above is "not filling".
6. A saw-tooth is bounded (`sawtooth`): a quorum queue's write-ahead log grows with every
   message until it rolls over at `raft.wal_max_size_bytes` (512 MiB by default), when the
   entries nothing needs any more are deleted, so headroom falls linearly and steps back up
   by as much. When the samples given (which may reach back further than the window) end
   with at least two upward steps of similar size, each giving back what the tooth before
   it took (older, irregular history is left out), and the fall now is no faster than those
   teeth fell (`SAWTOOTH_SIMILAR`), the answer is "not filling"
   as long as the headroom outlasts the rest of the current tooth (`bounded_by_bytes`: the
   most a tooth takes), instead of one tooth's fall extrapolated over an hour.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from likkerctl.core.disk.figures import METHOD, Forecast, Regime, Sample

__all__ = ["METHOD", "Forecast", "Sample", "Sawtooth", "forecast", "sawtooth", "theil_sen"]

# A change of slope counts when the slopes differ by this share of the larger one.
SLOPE_CHANGE_SHARE = 1 / 3
# A split must raise the fit's likelihood this many times more than BIC asks of its three
# parameters. Measured on synthetic series (tests/unit/test_forecast.py's generators): about
# 1% of noisy steady fills get a (harmless) split and none of 1,200 that fill within the
# hour was said to be out of it; a fix is seen 20-65 s after it at 3-15 MB of noise, and
# 51 s after it in the stack's Prometheus series of a real one. 3 and 4 saw that one 10 s
# sooner but made 2-3 times the false splits; 6 saw it 30 s later.
SPLIT_PENALTY = 5.0
# How sure each side of a change must be that the other side's slope is not its own.
SLOPE_CHANGE_CONFIDENCE = 0.95
# The change-point search looks at no more points than this (evenly thinned) and tries no
# more splits: pairwise slopes are O(n^2) per split.
SEARCH_POINTS = 120
SEARCH_SPLITS = 40
# A dip this many readings long, and the rise back from it, is noise, not a step up.
DIP_READINGS = 4
# Saw-tooth: steps and teeth "of similar size" are within this factor of their median.
SAWTOOTH_SIMILAR = 1.5


def step_up_indices(headroom: np.ndarray, min_step: float) -> np.ndarray:
    """Indices i where headroom[i + 1] - headroom[i] is an upward step.

    A rise that only comes back from a dip (another process's file written and deleted
    within a few readings) is not one: the step must also clear the highest of the
    `DIP_READINGS` readings before it.
    """
    if len(headroom) < 3:
        return np.array([], dtype=int)
    diffs = np.diff(headroom)
    mad = float(np.median(np.abs(diffs - np.median(diffs))))
    threshold = max(8 * 1.4826 * mad, min_step)
    ups = np.nonzero(diffs > threshold)[0]
    before = np.array([headroom[max(0, i - DIP_READINGS + 1) : i + 1].max() for i in ups])
    return ups[headroom[ups + 1] - before > threshold] if len(ups) else ups


def last_step_index(headroom: np.ndarray, min_step: float) -> int:
    """Index where the series restarts after its last upward step (0 if none)."""
    ups = step_up_indices(headroom, min_step)
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


def slope_change_index(
    t: np.ndarray,
    h: np.ndarray,
    *,
    min_points: int,
    min_span_s: float,
    min_rate_change: float,
) -> int:
    """Index where the last regime of slope begins (0: one regime); see the module doc."""
    start = 0
    while True:
        split = _best_split(t[start:], h[start:], min_points, min_span_s, min_rate_change)
        if split is None:
            return start
        start += split


class _PairwiseSlopes:
    """All pairwise slopes of a series once, so each split's two Theil-Sen fits are a
    selection and a partial sort (Sen's interval without the ties correction)."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        i, j = np.triu_indices(len(x), k=1)
        keep = x[j] != x[i]
        self.i, self.j = i[keep], j[keep]
        self.slopes = (y[self.j] - y[self.i]) / (x[self.j] - x[self.i])
        self.x, self.y = x, y
        self.z = NormalDist().inv_cdf(0.5 + SLOPE_CHANGE_CONFIDENCE / 2)

    def fit(self, lo: int, hi: int) -> tuple[float, float, float, float]:
        """(slope, low, high, sum of absolute residuals) of the points lo..hi-1."""
        chosen = self.slopes[(self.i >= lo) & (self.j < hi)]
        nt, n = len(chosen), hi - lo
        sigma = np.sqrt(n * (n - 1) * (2 * n + 5) / 18.0)
        upper = min(round((nt + self.z * sigma) / 2.0), nt - 1)
        lower = max(round((nt - self.z * sigma) / 2.0) - 1, 0)
        mid = (nt - 1) // 2, nt // 2
        ranked = np.partition(chosen, sorted({lower, upper, *mid}))
        slope = float(ranked[mid[0]] + ranked[mid[1]]) / 2
        x, y = self.x[lo:hi], self.y[lo:hi]
        intercept = float(np.median(y) - slope * np.median(x))
        cost = float(np.abs(y - intercept - slope * x).sum())
        return slope, float(ranked[lower]), float(ranked[upper]), cost


def _best_split(
    t: np.ndarray, h: np.ndarray, min_points: int, min_span_s: float, min_rate_change: float
) -> int | None:
    n = len(t)
    if n < 2 * min_points:
        return None
    # Thin long series for the search (the cut is then exact to the thinning step).
    every = max(1, int(np.ceil(n / SEARCH_POINTS)))
    idx = np.arange(0, n, every)
    ts, hs = t[idx] - t[0], h[idx]
    m = len(ts)
    need = max(2, int(np.ceil(min_points / every)))
    splits = [
        k
        for k in range(need, m - need + 1)
        if ts[k - 1] - ts[0] >= min_span_s and ts[-1] - ts[k] >= min_span_s
    ]
    if not splits:
        return None
    if len(splits) > SEARCH_SPLITS:
        splits = [splits[i] for i in np.linspace(0, len(splits) - 1, SEARCH_SPLITS).astype(int)]
    pairs = _PairwiseSlopes(ts, hs)
    one_line = pairs.fit(0, m)[3]
    best: tuple[float, int] | None = None
    for k in splits:
        s_l, low_l, high_l, cost_l = pairs.fit(0, k)
        s_r, low_r, high_r, cost_r = pairs.fit(k, m)
        apart = not (low_r <= s_l <= high_r) and not (low_l <= s_r <= high_l)
        change = abs(s_r - s_l)
        large = change >= max(SLOPE_CHANGE_SHARE * max(abs(s_l), abs(s_r)), min_rate_change)
        if apart and large and (best is None or cost_l + cost_r < best[0]):
            best = (cost_l + cost_r, k)
    if best is None or best[0] <= 0:
        return int(idx[best[1]]) if best else None
    # Penalised likelihood with Laplace errors: the log-likelihood gains m·ln(cost ratio);
    # BIC asks 1.5·ln(m) of the three more parameters (a slope, an intercept, the split).
    gain = m * np.log(one_line / best[0]) if one_line > 0 else 0.0
    return int(idx[best[1]]) if gain > SPLIT_PENALTY * 1.5 * np.log(m) else None


@dataclass(frozen=True)
class Sawtooth:
    """Headroom that falls and steps back up by as much, again and again (the WAL's roll-over)."""

    tooth_bytes: float  # the most one tooth takes (its fall, or the step that gives it back)
    teeth: int  # complete teeth seen (between two steps up)
    fallen_bytes: float  # taken so far by the current tooth
    tooth_rate: float  # bytes/s the fastest complete tooth fell

    @property
    def remaining_bytes(self) -> float:
        return max(self.tooth_bytes - self.fallen_bytes, 0.0)


def sawtooth(t: np.ndarray, h: np.ndarray, min_step: float) -> Sawtooth | None:
    """The saw-tooth the series ends with, if it ends with one (distinct readings, in time
    order): the longest run of regular teeth up to now, so an incident and its fix further
    back (a fall and a step unlike the others) do not hide the teeth since."""
    ups = step_up_indices(h, min_step)
    found = None
    for first in range(len(ups) - 2, -1, -1):
        teeth = _regular_teeth(t, h, ups[first:])
        if teeth is None:
            break
        found = teeth
    return found


def _regular_teeth(t: np.ndarray, h: np.ndarray, ups: np.ndarray) -> Sawtooth | None:
    steps = h[ups + 1] - h[ups]
    # Complete teeth: from just after one step up to just before the next.
    first, last = ups[:-1] + 1, ups[1:]
    falls, spans = h[first] - h[last], t[last] - t[first]
    if np.any(falls <= 0) or np.any(spans <= 0):
        return None
    sizes = np.concatenate((steps, falls))
    median = float(np.median(sizes))
    if sizes.max() > SAWTOOTH_SIMILAR * median or sizes.min() < median / SAWTOOTH_SIMILAR:
        return None
    return Sawtooth(
        tooth_bytes=float(sizes.max()),
        teeth=len(falls),
        fallen_bytes=max(float(h[ups[-1] + 1] - h[-1]), 0.0),
        tooth_rate=float((falls / spans).max()),
    )


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
    min_regime_points: int = 6,
    min_regime_s: float = 30.0,
    min_rate_change: float = 10e3,
) -> Forecast:
    """The ETA to the disk limit from samples (any order); see the module doc.

    The fit uses the last `window_s` of the samples; a saw-tooth is looked for in all of
    them, so a caller that has a longer history passes it whole.
    """
    # A NaN or infinite reading (Prometheus's answer for a gap, a broken scrape) is no
    # reading: one would make every fit, and so the ETA, NaN.
    ordered = sorted(
        (s for s in samples if math.isfinite(s.t) and math.isfinite(s.headroom)),
        key=lambda s: s.t,
    )
    if not ordered:
        note = "no samples" if not samples else "no finite samples"
        return Forecast("not enough data", METHOD, 0.0, 0, note=note)
    end = ordered[-1].t
    recent = [s for s in ordered if s.t >= end - window_s]
    t = np.array([s.t for s in recent], dtype=float)
    h = np.array([s.headroom for s in recent], dtype=float)
    raw_t, raw_h = t, h
    t, h = distinct_readings(t, h)
    cut = last_step_index(h, min_step)
    t, h = t[cut:], h[cut:]
    reason: Regime = "step up" if cut else "window"
    if len(t) < 2 and len(raw_t) >= min_points:
        # One unchanging reading throughout: the disk is not moving at all.
        t, h = raw_t[-min_points:], raw_h[-min_points:]
    else:
        change = slope_change_index(
            t,
            h,
            min_points=max(min_regime_points, min_points),
            min_span_s=max(min_regime_s, min_span_s),
            min_rate_change=min_rate_change,
        )
        if change:
            t, h, reason = t[change:], h[change:], "slope change"
    base = {
        "method": METHOD,
        "at": end,
        "step_cut": cut > 0,
        "confidence": confidence,
        "regime_since": float(t[0]) if len(t) else None,
        "regime_reason": reason,
    }
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
    teeth = bounded_sawtooth(ordered, min_step, -slope, now)
    if teeth is not None:
        return Forecast(
            "not filling",
            note=f"WAL saw-tooth: grows ≤ {teeth.tooth_bytes / 1e6:,.0f} MB before each "
            f"roll-over ({teeth.teeth} seen), {teeth.remaining_bytes / 1e6:,.0f} MB of it "
            "still to come",
            bounded_by_bytes=teeth.tooth_bytes,
            **fit,  # type: ignore[arg-type]
            **base,  # type: ignore[arg-type]
        )
    return Forecast(
        "filling",
        eta_s=now / -slope,
        eta_low_s=now / -low,
        eta_high_s=now / -high,
        **fit,  # type: ignore[arg-type]
        **base,  # type: ignore[arg-type]
    )


def bounded_sawtooth(
    ordered: Sequence[Sample], min_step: float, fall_rate: float, headroom: float
) -> Sawtooth | None:
    """The samples' saw-tooth, if it bounds a fall of `fall_rate` from `headroom` now."""
    t = np.array([s.t for s in ordered], dtype=float)
    h = np.array([s.headroom for s in ordered], dtype=float)
    found = sawtooth(*distinct_readings(t, h), min_step)
    if found is None:
        return None
    # The current tooth must be one of them: no deeper, and falling no faster.
    if found.fallen_bytes > found.tooth_bytes or fall_rate > SAWTOOTH_SIMILAR * found.tooth_rate:
        return None
    return found if headroom > found.remaining_bytes else None
