"""The disk-full forecast on synthetic series: constant fill, noise, steps, flat, too few."""

from __future__ import annotations

import numpy as np
import pytest

from likkerctl.core.disk.forecast import Forecast, Sample, forecast, theil_sen
from likkerctl.core.readable import humanize

LIMIT = 50e6


def series(
    seconds: int,
    *,
    start_headroom: float = 1e9,
    rate: float = -1e6,
    noise: float = 0.0,
    every: float = 5.0,
    seed: int = 1,
) -> list[Sample]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(int(seconds / every) + 1):
        t = 1_700_000_000 + i * every
        headroom = start_headroom + rate * i * every + rng.normal(0, noise)
        out.append(Sample(t, headroom + LIMIT, LIMIT))
    return out


def test_constant_fill_gives_the_exact_eta() -> None:
    fc = forecast(series(300))  # 1 GB falling 1 MB/s for 5 minutes
    assert fc.status == "filling"
    assert fc.eta_s == pytest.approx(700, rel=1e-6)
    assert fc.rate == pytest.approx(-1e6)
    assert fc.eta_low_s == pytest.approx(fc.eta_s) and fc.eta_high_s == pytest.approx(fc.eta_s)
    assert fc.points == 61 and fc.window_s == 300


def test_noise_keeps_the_eta_close_and_brackets_it() -> None:
    truth = 700.0
    fc = forecast(series(300, noise=20e6, seed=7))  # ±20 MB jitter on a 1 MB/s fill
    assert fc.status == "filling"
    assert fc.eta_s == pytest.approx(truth, rel=0.15)
    assert fc.eta_low_s is not None and fc.eta_high_s is not None
    assert fc.eta_low_s < fc.eta_s < fc.eta_high_s
    assert fc.eta_low_s <= truth <= fc.eta_high_s


def test_a_burst_from_another_process_does_not_swing_it() -> None:
    samples = series(300)
    # Another process writes 300 MB for two samples, then deletes it.
    for i in (30, 31):
        s = samples[i]
        samples[i] = Sample(s.t, s.free - 300e6, s.limit)
    fc = forecast(samples)
    assert fc.eta_s == pytest.approx(700, rel=0.05)


def test_a_step_up_after_a_purge_restarts_the_fit() -> None:
    before = series(300, start_headroom=1e9, rate=-3e6)  # falling fast, then a purge
    after = [
        Sample(s.t + 305, s.free, s.limit)
        for s in series(120, start_headroom=900e6, rate=-0.5e6, noise=1e6)
    ]
    fc = forecast(before + after)
    assert fc.step_cut is True
    assert fc.points == len(after)
    assert fc.rate == pytest.approx(-0.5e6, rel=0.1)
    assert fc.eta_s == pytest.approx(840 / 0.5, rel=0.1)


def test_flat_series_is_not_filling() -> None:
    fc = forecast(series(600, rate=0.0, noise=2e6))
    assert fc.status == "not filling"
    assert fc.eta_s is None


def test_growing_headroom_is_not_filling() -> None:
    fc = forecast(series(300, rate=+2e6))
    assert fc.status == "not filling" and fc.note == "headroom is steady or growing"


@pytest.mark.parametrize("seconds", [0, 5, 10])
def test_too_few_points_says_so(seconds: int) -> None:
    fc = forecast(series(seconds))
    assert fc.status == "not enough data" and fc.eta_s is None and "need" in fc.note


def test_no_samples() -> None:
    assert forecast([]).status == "not enough data"


def test_at_the_limit() -> None:
    fc = forecast(series(300, start_headroom=200e6, rate=-1e6))
    assert fc.status == "at limit" and fc.eta_s == 0


def test_only_the_window_is_used() -> None:
    old = series(3000, rate=-0.1e6, start_headroom=2e9)
    fc = forecast(old, window_s=300)
    assert fc.window_s == 300 and fc.rate == pytest.approx(-0.1e6)


def test_humanize() -> None:
    assert [humanize(x) for x in (None, 30, 600, 7200, 3 * 86400)] == [
        "never",
        "30s",
        "10 min",
        "2.0 h",
        "3.0 days",
    ]


@pytest.mark.parametrize("seed", range(5))
def test_theil_sen_agrees_with_scipy(seed: int) -> None:
    from scipy import stats

    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(0, 600, 80))
    y = 1e9 - 1e6 * x + rng.standard_t(2, 80) * 5e6
    y[::7] = y[0]  # ties, as in a flat stretch
    ours = theil_sen(y, x, 0.9)
    ref = stats.theilslopes(y, x, alpha=0.9)
    assert ours == pytest.approx(
        (ref.slope, ref.intercept, ref.low_slope, ref.high_slope), rel=1e-9
    )


def test_json_round_trip() -> None:
    fc = forecast(series(300, noise=1e6))
    assert Forecast.from_json(fc.as_json()).eta_s == pytest.approx(fc.eta_s, abs=1e-3)
