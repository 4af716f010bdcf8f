"""Early-warning evidence (trouble/evidence.py) on small hand-made series."""

from __future__ import annotations

import numpy as np
import pytest

import data_contract as dc
import risk
from trouble import evidence as ev

M = len(risk.RISK_METRICS)
CPU = risk.RISK_METRICS.index("cpu_used_pct")
MEM = risk.RISK_METRICS.index("mem_used_pct")
LOAD = risk.RISK_METRICS.index("load_per_core")
ORIGIN = ev.HISTORY_STEPS - 1  # index of the origin's step in the history


def quiet_history(level: float = 50.0) -> np.ndarray:
    """(1, HISTORY_STEPS, M): every metric flat at `level` (load per core at 0.5)."""
    history = np.full((1, ev.HISTORY_STEPS, M), level)
    history[..., LOAD] = 0.5
    return history


def flat_paths(history: np.ndarray) -> np.ndarray:
    """(1, 96, 2, M): p50 and p90 stay at the history's last value."""
    return np.repeat(history[:, -1:, None, :], ev.HORIZON, axis=1).repeat(2, axis=2)


def yesterday_index(k: int) -> int:
    """History index of the step k steps after the origin's clock time, yesterday."""
    return ORIGIN - ev.DAY + k


def test_yesterday_peak_at_its_clock_time_and_tracking() -> None:
    history = quiet_history()
    history[0, yesterday_index(20) : yesterday_index(26), CPU] = [96, 97, 98, 97, 96, 90]
    # today tracks yesterday within 2 points for the last hour only
    history[0, -ev.HOUR :, CPU] += 2.0
    history[0, -ev.TRACK : -ev.HOUR, CPU] += 8.0
    e = ev.compute(history, flat_paths(history))
    f = {k: v[0, CPU] for k, v in e.facts.items()}
    assert f["yday_cross_minutes"] == 100  # 20 steps after the origin's clock time
    assert f["yday_cross_value"] == 96 and f["yday_peak"] == 98
    assert f["track_steps"] == ev.HOUR and f["track_error"] == pytest.approx(2.0)
    assert e.features["yday_8h"][0, CPU] == pytest.approx((98 - 95) / 10)
    assert e.features["yday_1h"][0, CPU] == pytest.approx((50 - 95) / 10)  # k=20 is past 1 h
    assert e.features["tracked"][0, CPU] == pytest.approx(ev.HOUR / ev.TRACK)
    assert e.features["offset"][0, CPU] == pytest.approx(0.2)
    assert np.isnan(e.facts["yday_cross_minutes"][0, MEM])  # memory stayed flat


def test_yesterday_window_reaches_jitter_steps_before_now() -> None:
    history = quiet_history()
    history[0, yesterday_index(-ev.JITTER + 1), CPU] = 99.0
    history[0, yesterday_index(-ev.JITTER), CPU] = 99.0  # just outside the window
    e = ev.compute(history, flat_paths(history))
    assert e.facts["yday_cross_minutes"][0, CPU] == (1 - ev.JITTER) * 5
    assert e.features["yday_1h"][0, CPU] == pytest.approx(0.4)


def test_steps_since_the_last_crossing_and_frequency() -> None:
    history = quiet_history()
    history[0, ORIGIN - 29 : ORIGIN - 22, MEM] = 96.0  # 7 steps critical, last 23 ago
    history[0, 10, MEM] = 99.0  # 27 h ago: outside the last 24 h
    e = ev.compute(history, flat_paths(history))
    assert e.facts["since_critical"][0, MEM] == 23
    assert e.facts["last_critical_value"][0, MEM] == 96
    assert e.facts["critical_steps_24h"][0, MEM] == 7
    assert e.features["recency"][0, MEM] == pytest.approx(np.exp(-23 / 36))
    assert e.features["freq_critical"][0, MEM] == pytest.approx(7 / 288)
    assert e.facts["since_critical"][0, CPU] == -1 and e.features["recency"][0, CPU] == 0


def test_trend_level_and_volatility() -> None:
    history = quiet_history()
    history[0, -ev.TRACK :, MEM] = 60.0 + 0.5 * np.arange(ev.TRACK)  # 6 points an hour
    e = ev.compute(history, flat_paths(history))
    assert e.facts["trend_per_hour"][0, MEM] == pytest.approx(6.0)
    assert e.facts["value_3h_ago"][0, MEM] == 60.0 and e.facts["now"][0, MEM] == 77.5
    assert e.features["trend_1h"][0, MEM] == pytest.approx(0.6)
    assert e.features["level"][0, MEM] == pytest.approx((77.5 - 95) / 10)
    assert e.facts["volatility_units"][0, MEM] == pytest.approx(0.0, abs=1e-9)
    assert e.facts["trend_per_hour"][0, CPU] == pytest.approx(0.0, abs=1e-9)


def test_forecast_crossings_use_the_pessimistic_cpu_side() -> None:
    history = quiet_history()
    values = np.full((1, 96, 14, 3), 10.0)
    idle = dc.METRIC_COLUMNS.index("cpu_idle_pct")
    values[0, :, idle] = [60.0, 70.0, 80.0]  # cpu used p90 = 100 - p10 = 40
    values[0, 30:, idle, 0] = 3.0  # from step 31 the pessimistic cpu is 97
    mem = dc.METRIC_COLUMNS.index("mem_used_pct")
    values[0, 50:, mem, 1:] = 96.0  # p50 and p90 reach 96 at step 51
    paths = ev.forecast_paths(values, np.array([np.nan]))
    e = ev.compute(history, paths)
    assert e.facts["p90_cross_step"][0, CPU] == 31 and e.facts["p50_cross_step"][0, CPU] == 0
    assert e.facts["p50_cross_step"][0, MEM] == 51
    assert e.features["p90_8h"][0, CPU] == pytest.approx(0.2)
    assert e.features["p90_1h"][0, CPU] == pytest.approx((40 - 95) / 10)


def test_unknown_metric_is_nan_and_young_server_is_neutral() -> None:
    history = quiet_history()
    history[..., LOAD] = np.nan  # no cores
    history[0, :140, CPU] = np.nan  # first ticks 184 steps ago: no yesterday to compare
    e = ev.compute(history, flat_paths(history))
    assert not e.known[0, LOAD] and np.isnan(e.matrix()[0, LOAD]).all()
    assert e.known[0, CPU] and not np.isnan(e.matrix()[0, CPU]).any()
    assert e.features["yday_8h"][0, CPU] == ev.LOW
    assert e.features["tracking"][0, CPU] == -ev.LOW and e.features["tracked"][0, CPU] == 0


def test_from_contract_matches_risk_metrics() -> None:
    values = np.full((2, ev.HISTORY_STEPS, 14), 20.0)
    trajectory = np.full((2, 96, 14, 3), 20.0)
    e = ev.from_contract(values, trajectory, np.array([4.0, np.nan]))
    assert e.facts["now"][0, CPU] == 80.0 and e.facts["now"][0, LOAD] == 5.0
    assert np.isnan(e.facts["now"][1, LOAD])


def test_shapes_are_checked() -> None:
    with pytest.raises(ValueError, match="risk_history"):
        ev.compute(np.zeros((1, 288, M)), np.zeros((1, 96, 2, M)))
    with pytest.raises(ValueError, match="forecast_paths"):
        ev.compute(np.zeros((1, ev.HISTORY_STEPS, M)), np.zeros((1, 12, 2, M)))


def test_base_rates_count_past_origins_followed_by_critical() -> None:
    history = quiet_history()
    history[0, 100, CPU] = 97.0  # one critical step, 223 steps before the origin
    e = ev.compute(history, flat_paths(history))
    # past origins t' = 0 .. L-1-h; those in [100 - h, 99] see step 100 within h steps
    for name, h in (("base_1h", ev.HOUR), ("base_8h", ev.HORIZON)):
        expected = h / (ev.HISTORY_STEPS - h)
        assert e.features[name][0, CPU] == pytest.approx(expected)
        assert e.features[name][0, MEM] == 0.0


def test_risk_history_and_paths_derive_as_risk_py() -> None:
    rng = np.random.default_rng(3)
    values = rng.uniform(0, 100, (3, 5, 14))
    values[0, 0, dc.METRIC_COLUMNS.index("mem_used_pct")] = np.inf
    cores = np.array([4.0, np.nan, 0.0])
    derived = risk.risk_metrics(values, cores[:, None])
    expected = np.stack([derived[m] for m in risk.RISK_METRICS], axis=-1)
    np.testing.assert_array_equal(ev.risk_history(values, cores), expected)
    trajectory = np.sort(rng.uniform(0, 100, (3, 96, 14, 3)), axis=-1)
    paths = ev.forecast_paths(trajectory, cores)
    median = risk.risk_metrics(trajectory[..., 1], cores[:, None])
    assert paths[..., 0, MEM].tolist() == median["mem_used_pct"].tolist()
    idle = trajectory[..., dc.METRIC_COLUMNS.index("cpu_idle_pct"), 0]
    np.testing.assert_allclose(paths[..., 1, CPU], 100 - idle)
    load = trajectory[0, :, dc.METRIC_COLUMNS.index("load_average"), 2] / 4
    np.testing.assert_allclose(paths[0, :, 1, LOAD], load)
