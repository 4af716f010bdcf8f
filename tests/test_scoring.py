"""Backtest scoring (training/scoring.py) and the CloudWatch importer (training/nab.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import data_contract as dc
from inference.ingest import STATE_CODES
from training import scoring

CPU = dc.METRIC_COLUMNS.index("cpu_user_pct")


def _panel(series: np.ndarray) -> scoring.Panel:
    values = np.zeros((1, len(series), len(dc.METRIC_COLUMNS)))
    values[0, :, 0] = series
    observed = ~np.isnan(values[:, :, 0])
    filled = scoring.carry_forward(values, observed).astype(np.float32)
    states = np.where(observed, STATE_CODES["healthy"], STATE_CODES["offline"]).astype(np.int8)
    return scoring.Panel(["s"], 0, values, filled, states)


def _window(series: np.ndarray) -> np.ndarray:
    """One encoder window (1, E, 14) whose every column is `series`."""
    return np.repeat(np.asarray(series, dtype=np.float32)[None, :, None], 14, axis=2)


def test_dense_panel_keeps_gaps_and_fills_them_as_training(small_fleet: pd.DataFrame) -> None:
    frame = small_fleet.drop(index=[10, 11]).reset_index(drop=True)
    panel = scoring.dense_panel(frame)
    assert panel.values.shape == (4, 864, 14)
    assert panel.first_step == 20094 * 288  # 2025-01-06 in 5-minute steps since 1970
    assert np.isnan(panel.values[0, 10:12]).all() and not np.isnan(panel.values[0, 12]).any()
    assert (panel.filled[0, 10:12] == panel.filled[0, 9]).all()
    assert panel.states[0, 10] == STATE_CODES["offline"]
    assert panel.states[0, 9] == STATE_CODES["healthy"]
    assert panel.values[1, 5, CPU] == small_fleet.loc[864 + 5, "cpu_user_pct"]


def test_origins_need_encoder_inside_series_observed_origin_and_horizon() -> None:
    series = np.arange(400, dtype=float)
    series[:20] = np.nan  # the series starts at step 20
    series[150] = np.nan  # an offline step: filled in windows, not an origin
    pairs = scoring.origins(_panel(series), first=0, every=1, encoder=100, horizon=10)
    t0 = pairs[:, 1]
    assert t0.min() == 119 and t0.max() == 389
    assert 150 not in t0 and len(t0) == 389 - 119
    grid = scoring.origins(_panel(series), first=125, every=24, encoder=100, horizon=10)
    assert grid[:, 1].tolist() == list(range(125, 390, 24))


def test_windows_are_the_filled_encoder_steps() -> None:
    series = np.arange(400, dtype=float)
    series[150] = np.nan
    panel = _panel(series)
    values, states = scoring.windows(panel, np.array([[0, 199], [0, 399]]), 100)
    assert values.shape == (2, 100, 14) and values.dtype == np.float32
    assert values[0, :, 0].tolist() == [*range(100, 150), 149, *range(151, 200)]
    assert values[1, -1, 0] == 399 and states[0, 50] == STATE_CODES["offline"]


def test_last_value_seasonal_naive_and_hour_mean() -> None:
    window = _window(np.arange(300))
    assert scoring.last_value(window, 3)[0, :, 0].tolist() == [299, 299, 299]
    assert scoring.seasonal_naive(window, 3)[0, :, 0].tolist() == [12, 13, 14]
    assert scoring.hour_mean(window, 2)[0, :, 5].tolist() == [293.5, 293.5]
    with pytest.raises(ValueError, match="288"):
        scoring.seasonal_naive(window[:, :100], 3)


def test_linear_trend_is_least_squares_and_clipped() -> None:
    line = 50 + 0.5 * np.arange(-287, 1)
    assert scoring.linear_trend(_window(line), 4)[0, :, 5] == pytest.approx(
        [50.5, 51.0, 51.5, 52.0]
    )
    noisy = line + np.random.default_rng(1).normal(0, 2, 288)
    slope, intercept = np.polyfit(np.arange(-71, 1), noisy[-72:], 1)  # the last 6 h only
    forecast = scoring.linear_trend(_window(noisy), 4)[0, :, 5]
    assert forecast == pytest.approx(intercept + slope * np.arange(1, 5), abs=1e-4)
    steep = scoring.linear_trend(_window(99 + np.arange(288) * 0.1), 96)
    assert steep[0, :, 5].max() == 100.0  # mem_used_pct stops at its contract high
    assert steep[0, -1, 8] > 100  # net_in_mb_s has no upper bound
    falling = scoring.linear_trend(_window(5 - np.arange(288) * 0.1), 96)
    assert falling.min() == 0.0


def test_mase_scale_seasonal_lag_one_and_floor() -> None:
    rng = np.random.default_rng(0)
    series = 50 + 10 * np.sin(np.arange(1000) * 2 * np.pi / 288) + rng.normal(0, 1, 1000)
    scale, floored = scoring.mase_scale(_panel(series), before=600)
    assert scale[0, 0] == pytest.approx(np.mean(np.abs(series[288:600] - series[:312])))
    assert scale[0, 1] == scoring.SCALE_FLOOR[1] and floored[0, 1]  # constant column
    assert not floored[0, 0]
    short, _ = scoring.mase_scale(_panel(series), before=400)  # 112 seasonal pairs: lag 1
    assert short[0, 0] == pytest.approx(np.mean(np.abs(np.diff(series[:400]))))


def test_series_mean_beats_and_coverage() -> None:
    err = np.array([[1.0, 2.0], [3.0, np.nan], [5.0, 1.0]])
    means = scoring.series_mean(err, np.array([0, 0, 2]), 3)
    assert means[0].tolist() == [2.0, 2.0] and np.isnan(means[1]).all()
    assert means[2].tolist() == [5.0, 1.0]
    mine = np.array([[1.0], [2.0], [3.0], [4.0]])
    other = np.array([[2.0], [1.0], [3.0], [5.0]])
    assert scoring.beats(mine, other)[0] == pytest.approx(2 / 3)  # the tie is left out
    truth = np.full((2, 6, 14), 10.0)
    point = np.full((2, 6, 14), 12.0)
    assert scoring.coverage(truth, point - 3, point + 3, h=6)[0] == 1.0
    assert scoring.coverage(truth, point - 1, point + 1, h=6)[0] == 0.0


def test_score_horizon_mean_and_median_over_series() -> None:
    truth = np.zeros((4, 6, 14))
    point = np.zeros((4, 6, 14))
    point[:, 5, 0] = [1.0, 3.0, 10.0, 10.0]  # series 0: MAE 2; series 1: MAE 10
    scale = np.ones((3, 14))
    scale[1] = 5.0  # series 1: MASE 2; series 2 has no origins
    out = scoring.score_horizon(truth, {"x": point}, np.array([0, 0, 1, 1]), scale, 6)["x"]
    assert out["mae"][0] == 6.0 and out["mase"][0] == 2.0 and out["mase_median"][0] == 2.0
    assert out["series_mae"][:2, 0].tolist() == [2.0, 10.0]
    assert np.isnan(out["series_mae"][2, 0])
