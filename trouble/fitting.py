"""Fitting the early-warning estimate: labels, weighted logistic regression, calibration
maps and precision-targeted thresholds. Pure numpy, deterministic.

* labels(): from the true risk metrics after each origin, 1 if the metric reaches critical
  within 1 h (12 steps) / 8 h (96 steps), 0 if it stays below, NaN if that is unknown
  (no crossing, but some of those steps were not observed).
* logistic(): L2-regularised logistic regression by Newton's method (iteratively
  reweighted least squares), with sample weights; the intercept is not penalised.
* isotonic(): the pool-adjacent-violators fit of outcomes against scores, returned as
  knots for np.interp (monotone non-decreasing by construction).
* platt(): a two-parameter logistic map of the score's logit.
* threshold_for_precision(): the lowest probability whose flags reach a precision target.
"""

from __future__ import annotations

import numpy as np

from trouble.evidence import CRITICAL, HORIZONS

EPS = 1e-6


def labels(future: np.ndarray) -> np.ndarray:
    """future (N, >= 96, M) true risk metrics after the origin -> (N, M, 2) of 1.0 (reaches
    critical within HORIZONS[k] steps), 0.0 (observed below it) or NaN (not known)."""
    out = []
    for h in HORIZONS:
        window = future[:, :h]
        crossed = (window >= CRITICAL).any(axis=1)
        complete = ~np.isnan(window).any(axis=1)
        out.append(np.where(crossed, 1.0, np.where(complete, 0.0, np.nan)))
    return np.stack(out, axis=-1)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPS, 1.0 - EPS)
    return np.log(p) - np.log1p(-p)


def logistic(
    x: np.ndarray, y: np.ndarray, weight: np.ndarray, l2: float = 1.0, steps: int = 100
) -> tuple[np.ndarray, float]:
    """Coefficients (F,) and intercept minimising the weighted log loss of y (0/1) on x
    (N, F) plus l2/2 * |coef|^2. x should be standardised; weights sum to anything."""
    n, f = x.shape
    design = np.hstack([x, np.ones((n, 1))])
    penalty = np.full(f + 1, l2)
    penalty[-1] = 0.0
    beta = np.zeros(f + 1)
    for _ in range(steps):
        p = sigmoid(design @ beta)
        gradient = design.T @ (weight * (p - y)) + penalty * beta
        curvature = weight * np.maximum(p * (1.0 - p), 1e-12)
        hessian = (design * curvature[:, None]).T @ design + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hessian, gradient)
        beta -= step
        if np.abs(step).max() < 1e-9:
            break
    return beta[:-1], float(beta[-1])


def log_loss(p: np.ndarray, y: np.ndarray, weight: np.ndarray | None = None) -> float:
    """Weighted mean negative log likelihood."""
    p = np.clip(p, EPS, 1.0 - EPS)
    w = np.ones_like(p) if weight is None else weight
    return float(-(w * (y * np.log(p) + (1 - y) * np.log1p(-p))).sum() / w.sum())


def isotonic(
    score: np.ndarray, y: np.ndarray, weight: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Pool adjacent violators: knots (x, y), x increasing, y non-decreasing, such that
    np.interp(score, x, y) is the weighted least-squares monotone fit of y on score."""
    order = np.argsort(score, kind="stable")
    s, t = score[order], y[order].astype(np.float64)
    w = np.ones_like(s) if weight is None else weight[order].astype(np.float64)
    value, mass, centre = [], [], []  # per block: mean y, weight, weighted mean score
    for si, ti, wi in zip(s.tolist(), t.tolist(), w.tolist(), strict=True):
        value.append(ti)
        mass.append(wi)
        centre.append(si)
        while len(value) > 1 and value[-2] >= value[-1]:
            v, m, c = value.pop(), mass.pop(), centre.pop()
            total = mass[-1] + m
            value[-1] = (value[-1] * mass[-1] + v * m) / total
            centre[-1] = (centre[-1] * mass[-1] + c * m) / total
            mass[-1] = total
    return np.array(centre), np.array(value)


def platt(score: np.ndarray, y: np.ndarray, weight: np.ndarray) -> tuple[float, float]:
    """(a, b) such that sigmoid(a * logit(score) + b) is calibrated on (score, y)."""
    coef, bias = logistic(logit(score)[:, None], y, weight, l2=0.0)
    return float(coef[0]), bias


def threshold_for_precision(
    probability: np.ndarray,
    y: np.ndarray,
    target: float,
    weight: np.ndarray | None = None,
    min_hits: int = 20,
) -> tuple[float, dict]:
    """The lowest probability t such that flagging p >= t keeps the (weighted) precision
    >= target on (probability, y), with at least min_hits true flags; and what it gives
    there (precision, recall, flags). Ties are never split. No such t: 1.0 (never flags)."""
    order = np.argsort(-probability, kind="stable")
    w = np.ones(len(order)) if weight is None else weight[order]
    p, outcome = probability[order], y[order]
    hits, mass = np.cumsum(w * outcome), np.cumsum(w)
    count = np.cumsum(outcome)
    last_of_tie = np.append(p[1:] != p[:-1], True)
    ok = last_of_tie & (hits >= target * mass) & (count >= min_hits)
    if not ok.any():
        return 1.0, {"precision": None, "recall": 0.0, "flags": 0}
    k = int(np.flatnonzero(ok)[-1])
    stats = {
        "precision": float(hits[k] / mass[k]),
        "recall": float(hits[k] / max(hits[-1], 1e-12)),
        "flags": k + 1,
    }
    return float(p[k]), stats
