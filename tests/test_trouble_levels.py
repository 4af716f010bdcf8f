"""Levels, points and assessments from the early-warning probabilities (trouble/levels.py)."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest

import risk
from trouble import evidence as ev
from trouble import levels

M = len(risk.RISK_METRICS)
CPU = risk.RISK_METRICS.index("cpu_used_pct")
T = levels.Thresholds(critical=0.6, warning=0.3, watch=0.1)


def quiet() -> np.ndarray:
    """(1, M) current values at half their warning thresholds."""
    return ev.WARNING[None, :] / 2


def points(p1: float, p8: float, now: float = 50.0) -> float:
    """CPU's points for these probabilities and current value."""
    probabilities = np.zeros((1, M, 2))
    probabilities[0, CPU] = [p1, p8]
    current = quiet()
    current[0, CPU] = now
    return float(levels.metric_points(probabilities, current, T)[0, CPU])


@pytest.mark.parametrize(
    ("p1", "p8", "now", "level"),
    [
        (0.0, 0.0, 50.0, "healthy"),
        (0.0, 0.099, 50.0, "healthy"),
        (0.0, 0.1, 50.0, "watch"),  # thresholds are inclusive
        (0.0, 0.299, 50.0, "watch"),
        (0.1, 0.3, 50.0, "warning"),
        (0.599, 1.0, 50.0, "warning"),
        (0.6, 0.6, 50.0, "critical"),
        (0.0, 0.0, 85.0, "watch"),  # at warning now: watched, not alerted
        (0.0, 0.0, 95.0, "critical"),  # critical now
    ],
)
def test_levels_respect_the_thresholds(p1: float, p8: float, now: float, level: str) -> None:
    assert risk.level_for(points(p1, p8, now)) == level


def test_points_rise_with_the_probability_inside_each_band() -> None:
    assert points(0, 0) == 0 and points(0, 0.05) == 14 and points(0, 0.2) == 39
    assert points(0, 0.3) == 50 and points(0, 1.0) == 69
    assert points(0.6, 0.6) == 70 and points(1.0, 1.0) == 99
    assert points(0, 0, now=95.0) == 100
    grid = [points(0.0, p) for p in np.linspace(0, 1, 101)]
    assert (np.diff(grid) >= 0).all()


def test_unknown_metrics_and_server_scores() -> None:
    probabilities = np.zeros((2, M, 2))
    probabilities[0, CPU] = [0.0, 0.2]
    probabilities[:, 1:], probabilities[1] = np.nan, np.nan
    now = np.where(np.isnan(probabilities[..., 0]), np.nan, quiet())
    p = levels.metric_points(probabilities, now, T)
    assert p[0, CPU] == 39 and np.isnan(p[0, 1:]).all() and np.isnan(p[1]).all()
    assert levels.server_scores(p).tolist() == [39, 0]
    assert levels.level_names(p)[:, :2].tolist() == [["watch", "healthy"], ["healthy", "healthy"]]


def test_thresholds_are_checked() -> None:
    with pytest.raises(ValueError, match="watch <= warning"):
        levels.Thresholds(critical=0.5, warning=0.2, watch=0.3)
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        levels.Thresholds(critical=0.0, warning=0.2, watch=0.1)


def test_flags_are_warning_or_critical() -> None:
    probabilities = np.zeros((3, M, 2))
    probabilities[:, CPU] = [[0.0, 0.29], [0.0, 0.31], [0.7, 0.7]]
    flags = levels.flags(probabilities, np.repeat(quiet(), 3, axis=0), T)
    assert flags[:, CPU].tolist() == [False, True, True] and flags.sum() == 2


def _evidence(now: float) -> ev.Evidence:
    """One server whose CPU p90 crosses critical at step 4; other metrics quiet."""
    features = {n: np.zeros((1, M)) for n in ev.FEATURES}
    facts = {n: np.zeros((1, M)) for n in ev.FACTS}
    facts["now"][:] = quiet()
    facts["now"][0, CPU] = now
    facts["yday_cross_minutes"][:] = np.nan
    facts["since_critical"][:] = -1
    facts["p90_cross_step"][0, CPU] = 4
    return ev.Evidence(features, facts)


def test_assess_gives_factors_with_reasons() -> None:
    probabilities = np.zeros((1, M, 2))
    probabilities[0, CPU] = [0.7, 0.9]
    origin = [datetime(2025, 1, 6, 14, 0, tzinfo=timezone.utc)]
    (a,) = levels.assess(probabilities, _evidence(80.0), T, origin)
    assert a.level == "critical" and a.score == 77
    assert a.factors == [
        {
            "metric": "cpu_used_pct",
            "severity": "critical",
            "threshold": 95.0,
            "basis": "estimate",
            "eta_minutes": 20,
            "value": 80.0,
            "points": 77,
            "probability_1h": 0.7,
            "probability_8h": 0.9,
            "reason": "the p90 forecast crosses 95% at 14:20 UTC",
        }
    ]


def test_assess_quiet_server_has_no_factors() -> None:
    origin = [datetime(2025, 1, 6, 14, 0, tzinfo=timezone.utc)]
    (a,) = levels.assess(np.full((1, M, 2), 0.01), _evidence(40.0), T, origin)
    assert (a.score, a.level, a.factors) == (2, "healthy", [])
