"""Risk scoring: points table, levels, derived metrics, bonus, factors, NaN, alerts."""

from __future__ import annotations

import json

import numpy as np
import pytest

import data_contract as dc
import risk

COL = {name: i for i, name in enumerate(dc.METRIC_COLUMNS)}
QUIET = {
    "cpu_user_pct": 15.0,
    "cpu_sys_pct": 3.0,
    "cpu_iowait_pct": 1.0,
    "cpu_idle_pct": 80.0,
    "java_cpu_pct": 10.0,
    "mem_used_pct": 40.0,
    "swap_used_pct": 0.0,
    "disk_usage_pct": 50.0,
    "net_in_mb_s": 5.0,
    "net_out_mb_s": 5.0,
    "back_close_wait": 0.0,
    "front_close_wait": 0.0,
    "load_average": 2.0,
    "uptime_days": 10.0,
}
P10, P50, P90 = 0, 1, 2


def now(**overrides: float) -> np.ndarray:
    """Current values (1, 14): a quiet server with some metrics overridden."""
    values = {**QUIET, **overrides}
    return np.array([[values[name] for name in dc.METRIC_COLUMNS]])


def flat(current: np.ndarray, horizon: int = 96) -> np.ndarray:
    """A forecast (B, horizon, 14, 3) that stays at the current values, all quantiles."""
    b = current.shape[0]
    return np.broadcast_to(current[:, None, :, None], (b, horizon, len(COL), 3)).copy()


def set_path(
    traj: np.ndarray, metric: str, step: int, value: float, quantiles: tuple = (P10, P50, P90)
) -> np.ndarray:
    """Set one metric to value from 1-based step onwards, for the given quantile indexes."""
    for q in quantiles:
        traj[:, step - 1 :, COL[metric], q] = value
    return traj


def one(current: np.ndarray, traj: np.ndarray, cores: float | None = None) -> risk.Assessment:
    result = risk.assess(current, traj, None if cores is None else np.array([cores]))
    assert len(result) == 1
    return result[0]


def crossing(metric: str, step: int, value: float, quantiles: tuple, **cur: float):
    current = now(**cur)
    return one(current, set_path(flat(current), metric, step, value, quantiles), cores=8.0)


# --- points table ---------------------------------------------------------------------


def test_quiet_server_scores_zero_with_no_factors() -> None:
    result = one(now(), flat(now()), cores=8.0)
    assert result == risk.Assessment(0, "healthy", [])


@pytest.mark.parametrize(
    ("value", "step", "quantiles", "points", "basis", "severity"),
    [
        (96.0, 1, (P50, P90), 95, "p50", "critical"),  # eta 5: 94.74
        (96.0, 6, (P50, P90), 93, "p50", "critical"),  # eta 30: 93.4375
        (96.0, 48, (P50, P90), 83, "p50", "critical"),  # eta 240: 82.5 rounds half up
        (96.0, 96, (P50, P90), 70, "p50", "critical"),  # eta 480
        (96.0, 8, (P90,), 78, "p90", "critical"),  # eta 40: 77.5 rounds half up
        (96.0, 96, (P90,), 50, "p90", "critical"),
        (90.0, 12, (P50, P90), 63, "p50", "warning"),  # eta 60: 62.5 (half up, not even)
        (90.0, 96, (P50, P90), 45, "p50", "warning"),
        (90.0, 24, (P90,), 45, "p90", "warning"),  # eta 120: 45.0
        (90.0, 96, (P90,), 30, "p90", "warning"),
    ],
)
def test_forecast_crossing_points(
    value: float, step: int, quantiles: tuple, points: int, basis: str, severity: str
) -> None:
    result = crossing("mem_used_pct", step, value, quantiles)
    assert result.score == points
    assert result.level == risk.level_for(points)
    [factor] = result.factors
    assert factor["points"] == points
    assert (factor["basis"], factor["severity"]) == (basis, severity)
    assert factor["eta_minutes"] == 5 * step


@pytest.mark.parametrize(
    ("mem", "points", "severity"), [(95.0, 100, "critical"), (85.0, 60, "warning")]
)
def test_current_value_points_are_inclusive(mem: float, points: int, severity: str) -> None:
    result = one(now(mem_used_pct=mem), flat(now()))  # the forecast falls back at once
    assert result.score == points
    assert result.factors == [
        {
            "metric": "mem_used_pct",
            "severity": severity,
            "threshold": mem,
            "basis": "current",
            "eta_minutes": 0,
            "value": mem,
            "points": points,
        }
    ]


def test_staying_in_warning_scores_as_a_p50_crossing_at_the_first_step() -> None:
    result = one(now(mem_used_pct=90.0), flat(now(mem_used_pct=90.0)))
    assert result.score == 65  # p50 warning at eta 5 (64.79) beats current warning (60)
    assert result.factors[0]["basis"] == "p50" and result.factors[0]["eta_minutes"] == 5


def test_just_below_thresholds_scores_nothing() -> None:
    current = now(mem_used_pct=84.99, swap_used_pct=9.99, disk_usage_pct=84.99)
    traj = set_path(flat(current), "cpu_iowait_pct", 1, 14.99)
    assert one(current, traj, cores=2.01).score == 0  # load 2.0 / 2.01 cores < 1.0


def test_current_beats_forecast_and_forecast_beats_current_warning() -> None:
    assert crossing("mem_used_pct", 1, 99.0, (P50, P90), mem_used_pct=96.0).score == 100
    result = crossing("mem_used_pct", 6, 96.0, (P50, P90), mem_used_pct=90.0)
    assert result.score == 93 and result.factors[0]["basis"] == "p50"


def test_eta_beyond_eight_hours_keeps_the_480_minute_points() -> None:
    current = now()
    traj = set_path(flat(current, horizon=192), "mem_used_pct", 120, 96.0, (P50, P90))
    result = one(current, traj)
    assert result.score == 70 and result.factors[0]["eta_minutes"] == 600


def test_horizon_comes_from_the_trajectory_shape() -> None:
    current = now()
    traj = set_path(flat(current, horizon=12), "mem_used_pct", 12, 96.0, (P50, P90))
    assert one(current, traj).factors[0]["eta_minutes"] == 60
    assert one(current, flat(current, horizon=1)).score == 0


def test_sooner_scores_higher_p50_beats_p90_critical_beats_warning() -> None:
    horizon = 96
    current = np.repeat(now(), horizon, axis=0)
    steps = np.arange(1, horizon + 1)

    def scores(value: float, quantiles: tuple) -> np.ndarray:
        traj = flat(current, horizon)
        for row, step in enumerate(steps):
            set_path(traj[row : row + 1], "mem_used_pct", step, value, quantiles)
        return np.array([a.score for a in risk.assess(current, traj)])

    p50_crit, p90_crit = scores(96.0, (P50, P90)), scores(96.0, (P90,))
    p50_warn, p90_warn = scores(90.0, (P50, P90)), scores(90.0, (P90,))
    for row in (p50_crit, p90_crit, p50_warn, p90_warn):
        assert (np.diff(row) <= 0).all() and row[0] > row[-1]
    assert (p50_crit > p90_crit).all() and (p50_warn > p90_warn).all()
    assert (p50_crit > p50_warn).all() and (p90_crit > p90_warn).all()
    assert (p90_crit > p50_warn).all()
    assert p90_warn.min() == 30 and p50_crit.max() == 95


# --- levels ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("score", "level"),
    [
        (0, "healthy"),
        (29, "healthy"),
        (30, "watch"),
        (49, "watch"),
        (50, "warning"),
        (69, "warning"),
        (70, "critical"),
        (100, "critical"),
    ],
)
def test_level_boundaries(score: int, level: str) -> None:
    assert risk.level_for(score) == level


def test_levels_constant_and_bad_scores() -> None:
    assert risk.LEVELS == (("healthy", 0), ("watch", 30), ("warning", 50), ("critical", 70))
    with pytest.raises(ValueError):
        risk.level_for(-1)
    with pytest.raises(ValueError):
        risk.level_for(float("nan"))


# --- derived metrics ------------------------------------------------------------------


def test_risk_metrics_derives_cpu_used_and_load_per_core() -> None:
    values = np.stack([now(cpu_idle_pct=30.0, load_average=6.0)[0]] * 6).reshape(2, 3, len(COL))
    cores = np.array([[4.0, np.nan, 0.0], [2.0, 8.0, -1.0]])
    metrics = risk.risk_metrics(values, cores)
    assert list(metrics) == list(risk.RISK_THRESHOLDS) == list(risk.RISK_METRICS)
    assert all(a.shape == (2, 3) for a in metrics.values())
    assert np.allclose(metrics["cpu_used_pct"], 70.0)
    expected_load = np.array([[1.5, np.nan, np.nan], [3.0, 0.75, np.nan]])
    np.testing.assert_allclose(metrics["load_per_core"], expected_load)
    assert np.allclose(metrics["mem_used_pct"], 40.0)
    with pytest.raises(ValueError):
        risk.risk_metrics(np.zeros((2, 13)), np.ones(2))


def test_cpu_used_is_scored_from_idle() -> None:
    result = one(now(cpu_idle_pct=4.0), flat(now(cpu_idle_pct=4.0)))
    assert result.score == 100 and result.factors[0]["metric"] == "cpu_used_pct"
    assert result.factors[0]["value"] == 96.0
    result = crossing("cpu_idle_pct", 12, 10.0, (P10, P50, P90))  # cpu used 90: warning
    assert result.factors[0] == {
        "metric": "cpu_used_pct",
        "severity": "warning",
        "threshold": 85.0,
        "basis": "p50",
        "eta_minutes": 60,
        "value": 90.0,
        "points": 63,
    }


def test_cpu_used_p90_basis_is_idle_p10() -> None:
    result = crossing("cpu_idle_pct", 6, 3.0, (P10,))  # pessimistic idle: cpu used 97
    [factor] = result.factors
    assert (factor["basis"], factor["severity"], factor["value"]) == ("p90", "critical", 97.0)
    assert result.score == 78  # 80 - 30 * 30 / 480 = 78.125
    assert crossing("cpu_idle_pct", 6, 3.0, (P90,)).score == 0  # idle's p90 is optimistic


def test_load_per_core_with_known_and_unknown_cores() -> None:
    current = now(load_average=9.0)
    traj = flat(current)
    assert one(current, traj, cores=4.0).factors[0]["metric"] == "load_per_core"
    assert one(current, traj, cores=4.0).factors[0]["value"] == 2.25
    assert one(current, traj, cores=4.0).score == 100
    assert one(current, traj, cores=10.0).score == 0  # 0.9 per core
    for unknown in (None, np.nan, 0.0):
        assert one(current, traj, cores=unknown).score == 0
    assert crossing("load_average", 12, 6.0, (P10, P50, P90), load_average=1.0).score == 0
    current = now(load_average=1.0)
    traj = set_path(flat(current), "load_average", 12, 6.0)
    assert one(current, traj, cores=4.0).factors[0]["value"] == 1.5
    assert one(current, traj, cores=4.0).score == 63


def test_cores_per_server_in_a_batch() -> None:
    current = np.repeat(now(load_average=9.0), 3, axis=0)
    result = risk.assess(current, flat(current), np.array([4.0, np.nan, 16.0]))
    assert [a.score for a in result] == [100, 0, 0]
    assert [a.score for a in risk.assess(current, flat(current), 4.0)] == [100] * 3


# --- score: bonus and cap -------------------------------------------------------------


def _traj(current: np.ndarray, *paths: tuple) -> np.ndarray:
    traj = flat(current)
    for metric, step, value, quantiles in paths:
        set_path(traj, metric, step, value, quantiles)
    return traj


def test_bonus_for_each_additional_metric_at_45_points() -> None:
    current = now()
    top = ("mem_used_pct", 6, 96.0, (P50, P90))  # 93
    disk = ("disk_usage_pct", 96, 90.0, (P50, P90))  # 45: counts
    swap = ("swap_used_pct", 96, 20.0, (P90,))  # 30: does not count
    assert one(current, _traj(current, top)).score == 93
    assert one(current, _traj(current, top, swap)).score == 93
    assert one(current, _traj(current, top, disk)).score == 98
    assert one(current, _traj(current, top, disk, swap)).score == 98
    iowait = ("cpu_iowait_pct", 1, 20.0, (P50, P90))  # 65
    assert one(current, _traj(current, top, disk, iowait)).score == 100  # 103 capped


def test_bonus_counts_whole_number_points() -> None:
    current = now()
    top = ("mem_used_pct", 96, 96.0, (P50, P90))  # 70
    p90_warn = ("disk_usage_pct", 25, 90.0, (P90,))  # 44.79 -> 45: counts
    result = one(current, _traj(current, top, p90_warn))
    assert [f["points"] for f in result.factors] == [70, 45] and result.score == 75
    late = ("disk_usage_pct", 27, 90.0, (P90,))  # 44.375 -> 44: does not count
    assert one(current, _traj(current, top, late)).score == 70


def test_cap_at_100_with_everything_critical_now() -> None:
    current = now(cpu_idle_pct=0.0, mem_used_pct=100.0, swap_used_pct=100.0, load_average=99.0)
    current[0, COL["cpu_iowait_pct"]] = 100.0
    current[0, COL["disk_usage_pct"]] = 100.0
    result = one(current, flat(current), cores=1.0)
    assert result.score == 100 and result.level == "critical" and len(result.factors) == 6


# --- factors --------------------------------------------------------------------------


def test_factor_contents_and_order() -> None:
    current = now(mem_used_pct=97.0)
    traj = _traj(
        current,
        ("cpu_iowait_pct", 12, 16.346, (P90,)),  # 47.5 -> 48
        ("swap_used_pct", 6, 31.0, (P50, P90)),  # 93
        ("disk_usage_pct", 6, 96.123, (P50, P90)),  # 93, and disk sorts before swap
    )
    result = one(current, traj)
    assert result.score == 100 and result.level == "critical"
    expected = [
        ("mem_used_pct", "critical", 95.0, "current", 0, 97.0, 100),
        ("disk_usage_pct", "critical", 95.0, "p50", 30, 96.12, 93),
        ("swap_used_pct", "critical", 30.0, "p50", 30, 31.0, 93),
        ("cpu_iowait_pct", "warning", 15.0, "p90", 60, 16.35, 48),
    ]
    keys = ("metric", "severity", "threshold", "basis", "eta_minutes", "value", "points")
    assert result.factors == [dict(zip(keys, row, strict=True)) for row in expected]
    for factor in result.factors:
        assert [type(factor[k]) for k in keys] == [str, str, float, str, int, float, int]
    assert json.loads(json.dumps(result.factors)) == result.factors


def test_factor_value_is_the_value_at_the_first_crossing_step() -> None:
    current = now()
    traj = set_path(flat(current), "mem_used_pct", 10, 99.0, (P50, P90))
    set_path(traj, "mem_used_pct", 4, 95.5, (P50, P90))
    set_path(traj, "mem_used_pct", 5, 88.0, (P50, P90))  # dips back below critical
    [factor] = one(current, traj).factors
    assert (factor["severity"], factor["eta_minutes"], factor["value"]) == ("critical", 20, 95.5)


# --- NaN and bad input ----------------------------------------------------------------


def test_nan_forecasts_do_not_cross_and_do_not_crash() -> None:
    current = now()
    assert one(current, np.full_like(flat(current), np.nan)).score == 0
    traj = set_path(flat(current), "mem_used_pct", 1, np.nan)
    set_path(traj, "mem_used_pct", 6, 96.0, (P50, P90))
    assert one(current, traj).score == 93
    traj = set_path(flat(current), "disk_usage_pct", 1, np.inf)
    assert one(current, traj).score == 0
    nan_now = now(mem_used_pct=np.nan)
    assert one(nan_now, flat(nan_now)).score == 0


def test_batch_of_random_servers_matches_single_server_calls() -> None:
    rng = np.random.default_rng(1)
    current = rng.uniform(0, 100, (20, len(COL)))
    traj = np.sort(rng.uniform(60, 100, (20, 48, len(COL), 3)), axis=-1)
    traj[rng.uniform(size=traj.shape) < 0.05] = np.nan
    cores = rng.choice([4.0, 32.0, np.nan], 20)
    batch = risk.assess(current, traj, cores)
    singles = [
        risk.assess(current[i : i + 1], traj[i : i + 1], cores[i : i + 1])[0] for i in range(20)
    ]
    assert batch == singles
    assert any(a.factors for a in batch)
    assert len(risk.assess(current.astype(np.float32), traj.astype(np.float32), cores)) == 20


def _reference(current: np.ndarray, traj: np.ndarray, cores: float) -> tuple[int, dict]:
    """A slow, loop-by-loop reading of the scoring table for one server."""

    def metrics(v: np.ndarray) -> list[float]:
        load = v[COL["load_average"]] / cores if cores > 0 else np.nan
        names = ("mem_used_pct", "swap_used_pct", "cpu_iowait_pct", "disk_usage_pct")
        return [100 - v[COL["cpu_idle_pct"]], *(v[COL[n]] for n in names), load]

    p90 = traj[:, :, P90].copy()
    p90[:, COL["cpu_idle_pct"]] = traj[:, COL["cpu_idle_pct"], P10]
    paths = {"p50": [metrics(v) for v in traj[:, :, P50]], "p90": [metrics(v) for v in p90]}
    points = {}
    for m, (warn, crit) in enumerate(risk.RISK_THRESHOLDS.values()):
        found = [100.0 * (metrics(current)[m] >= crit), 60.0 * (metrics(current)[m] >= warn)]
        for basis, thr, hi, lo in [("p50", crit, 95, 70), ("p90", crit, 80, 50)] + [
            ("p50", warn, 65, 45),
            ("p90", warn, 50, 30),
        ]:
            steps = [k for k, v in enumerate(paths[basis], 1) if v[m] >= thr]
            if steps:
                found.append(hi - (hi - lo) * min(5 * steps[0], 480) / 480)
        if max(found) > 0:
            points[risk.RISK_METRICS[m]] = int(np.floor(max(found) + 0.5))
    ranked = sorted(points.values(), reverse=True) or [0]
    return min(100, ranked[0] + 5 * sum(p >= 45 for p in ranked[1:])), points


def test_matches_a_loop_by_loop_reference_on_random_servers() -> None:
    rng = np.random.default_rng(7)
    n, horizon = 200, 40
    base = now()[0]
    top = now(cpu_idle_pct=0.0, mem_used_pct=99.0, swap_used_pct=40.0, load_average=20.0)[0]
    top[[COL["cpu_iowait_pct"], COL["disk_usage_pct"]]] = [40.0, 99.0]
    reach = rng.uniform(0, 1.2, (n, 1, len(COL), 1)) ** 3 * (top - base)[:, None]
    ramp = np.linspace(0, 1, horizon)[None, :, None, None] * rng.uniform(0.5, 1.5, (n, 1, 1, 1))
    spread = np.array([0.8, 1.0, 1.2]) * rng.uniform(0.9, 1.1, (n, horizon, len(COL), 3))
    traj = np.sort(base[None, None, :, None] + reach * ramp * spread, axis=-1)
    current = np.where(rng.uniform(size=(n, 1)) < 0.3, traj[:, -1, :, P50], base)
    cores = rng.choice([4.0, 8.0, np.nan], n)
    results = risk.assess(current, traj, cores)
    for i, result in enumerate(results):
        score, points = _reference(current[i], traj[i], cores[i])
        assert result.score == score
        assert {f["metric"]: f["points"] for f in result.factors} == points
    assert len({a.score for a in results}) > 20
    bases = {(f["basis"], f["severity"]) for a in results for f in a.factors}
    metrics = {f["metric"] for a in results for f in a.factors}
    assert len(bases) == 6 and metrics == set(risk.RISK_METRICS)


def test_empty_batch_and_shape_errors() -> None:
    assert risk.assess(np.zeros((0, len(COL))), np.zeros((0, 96, len(COL), 3))) == []
    with pytest.raises(ValueError):
        risk.assess(now(), np.zeros((1, 96, len(COL), 2)))
    with pytest.raises(ValueError):
        risk.assess(now(), np.zeros((2, 96, len(COL), 3)))
    with pytest.raises(ValueError):
        risk.assess(now()[0], flat(now()))


# --- alerts ---------------------------------------------------------------------------


def _assessments() -> dict[str, risk.Assessment]:
    factor = {"metric": "mem_used_pct", "severity": "critical", "threshold": 95.0}
    factors = [dict(factor, points=p) for p in (100, 90, 80, 70)]
    return {
        "web02": risk.Assessment(75, "critical", factors),
        "db01": risk.Assessment(93, "critical", factors[:1]),
        "web01": risk.Assessment(75, "critical", []),
        "app01": risk.Assessment(55, "warning", factors[:2]),
        "batch01": risk.Assessment(35, "watch", []),
        "idle01": risk.Assessment(0, "healthy", []),
    }


def test_alerts_filter_by_level_and_order_by_score_then_name() -> None:
    result = risk.alerts(_assessments())
    assert [(a["server"], a["level"], a["risk_score"]) for a in result] == [
        ("db01", "critical", 93),
        ("web01", "critical", 75),
        ("web02", "critical", 75),
        ("app01", "warning", 55),
    ]
    assert [len(a["factors"]) for a in result] == [1, 0, 3, 2]
    assert [f["points"] for f in result[2]["factors"]] == [100, 90, 80]
    assert set(result[0]) == {"server", "level", "risk_score", "factors"}
    assert [a["server"] for a in risk.alerts(_assessments(), "critical")] == [
        "db01",
        "web01",
        "web02",
    ]
    assert len(risk.alerts(_assessments(), "watch")) == 5
    assert len(risk.alerts(_assessments(), "healthy")) == 6
    assert risk.alerts({}) == []


def test_alerts_copy_factors_and_reject_unknown_levels() -> None:
    assessments = _assessments()
    result = risk.alerts(assessments)
    result[0]["factors"][0]["points"] = -1
    assert assessments["db01"].factors[0]["points"] == 100
    with pytest.raises(ValueError):
        risk.alerts(assessments, "severe")


def test_alerts_from_assess() -> None:
    current = np.concatenate([now(), now(mem_used_pct=96.0), now(disk_usage_pct=90.0)])
    names = ["quiet", "hot", "warm"]
    result = dict(zip(names, risk.assess(current, flat(current)), strict=True))
    assert [(a["server"], a["risk_score"]) for a in risk.alerts(result)] == [
        ("hot", 100),
        ("warm", 65),
    ]
