"""Fitting the early-warning estimate (trouble/fitting.py): labels, logistic regression,
calibration maps, thresholds for a precision target."""

from __future__ import annotations

import numpy as np
import pytest

import risk
from trouble import fitting

M = len(risk.RISK_METRICS)
CPU = risk.RISK_METRICS.index("cpu_used_pct")


def test_labels_within_one_and_eight_hours() -> None:
    future = np.full((4, 96, M), 50.0)
    future[0, 11, CPU] = 95.0  # step 12: within 1 h
    future[1, 12, CPU] = 99.0  # step 13: within 8 h only
    future[2, 40, CPU] = np.nan  # unobserved, no crossing: unknown at 8 h, quiet at 1 h
    future[3, 5, CPU], future[3, 60, CPU] = np.nan, 96.0  # a crossing is known anyway
    y = fitting.labels(future)[:, CPU]
    assert y[0].tolist() == [1.0, 1.0] and y[1].tolist() == [0.0, 1.0]
    assert y[2, 0] == 0.0 and np.isnan(y[2, 1])
    assert np.isnan(y[3, 0]) and y[3, 1] == 1.0


def test_logistic_recovers_known_coefficients() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20_000, 2))
    y = (rng.random(20_000) < fitting.sigmoid(1.5 * x[:, 0] - 0.5 * x[:, 1] - 1.0)).astype(float)
    coef, intercept = fitting.logistic(x, y, np.ones(len(y)), l2=0.0)
    assert coef == pytest.approx([1.5, -0.5], abs=0.08) and intercept == pytest.approx(-1, abs=0.08)
    shrunk, _ = fitting.logistic(x, y, np.ones(len(y)), l2=1e5)
    assert np.abs(shrunk).max() < 0.5 * np.abs(coef).max()  # the penalty shrinks


def test_isotonic_is_monotone_and_fits_steps() -> None:
    rng = np.random.default_rng(1)
    score = rng.random(5_000)
    y = (rng.random(5_000) < np.where(score > 0.5, 0.8, 0.1)).astype(float)
    x_knots, y_knots = fitting.isotonic(score, y)
    assert (np.diff(x_knots) > 0).all() and (np.diff(y_knots) >= 0).all()
    calibrated = np.interp([0.2, 0.9], x_knots, y_knots)
    assert calibrated == pytest.approx([0.1, 0.8], abs=0.05)


def test_isotonic_pools_violators_with_weights() -> None:
    x_knots, y_knots = fitting.isotonic(
        np.array([0.1, 0.2, 0.3]), np.array([1.0, 0.0, 1.0]), np.array([1.0, 3.0, 1.0])
    )
    assert y_knots.tolist() == [0.25, 1.0] and x_knots.tolist() == pytest.approx([0.175, 0.3])


def test_platt_maps_a_miscalibrated_score() -> None:
    rng = np.random.default_rng(2)
    truth = rng.random(20_000)
    y = (rng.random(20_000) < truth).astype(float)
    a, b = fitting.platt(truth**3, y, np.ones(len(y)))  # overconfident low scores
    fixed = fitting.sigmoid(a * fitting.logit(np.array([0.125])) + b)
    assert fixed[0] == pytest.approx(0.5, abs=0.1)


def test_threshold_for_precision() -> None:
    p = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    y = np.array([1.0, 1.0, 0.0, 1.0, 0.0, 0.0])
    t, stats = fitting.threshold_for_precision(p, y, target=0.75, min_hits=1)
    assert t == 0.6 and stats == {"precision": 0.75, "recall": 1.0, "flags": 4}
    t, _ = fitting.threshold_for_precision(p, y, target=0.95, min_hits=1)
    assert t == 0.8
    never, stats = fitting.threshold_for_precision(p, y, target=0.95, min_hits=3)
    assert never == 1.0 and stats["flags"] == 0
    weight = np.array([1.0, 1.0, 4.0, 1.0, 1.0, 1.0])  # the false flag at 0.7 weighs more
    t, stats = fitting.threshold_for_precision(p, y, target=0.75, weight=weight, min_hits=1)
    assert t == 0.8 and stats["precision"] == 1.0


def test_threshold_never_splits_ties() -> None:
    p = np.array([0.9, 0.5, 0.5])
    y = np.array([1.0, 1.0, 0.0])
    t, stats = fitting.threshold_for_precision(p, y, target=0.9, min_hits=1)
    assert t == 0.9 and stats["flags"] == 1
