"""Server risk: one scheme, used by the API, the alerts and the dashboard.

Pure numpy functions that turn a server's current values and its forecast (p10/p50/p90
per 5-minute step, 96 steps = 8 h) into a risk score 0-100, a level and risk factors.

Risk metrics ("higher is worse", thresholds are inclusive: value >= threshold crosses):

    metric           warning  critical  derived from
    cpu_used_pct        85       95     100 - cpu_idle_pct
    mem_used_pct        85       95
    swap_used_pct       10       30
    cpu_iowait_pct      15       30
    disk_usage_pct      85       95
    load_per_core      1.0      2.0     load_average / cores (cores unknown: not scored)

Points of one risk metric: the highest of these conditions (eta = minutes from the
forecast origin to the first step whose value crosses; step k, 1-based, is at eta 5*k;
points fall linearly from eta 0 to eta 480 and stay at the 480 value beyond it):

    condition                  points at eta 0 -> eta 480
    current >= critical        100
    current >= warning          60
    p50 crosses critical        95 -> 70
    p90 crosses critical        80 -> 50
    p50 crosses warning         65 -> 45
    p90 crosses warning         50 -> 30

Points are rounded half up to whole numbers (p50 crossing critical at 30 min:
95 - 25 * 30 / 480 = 93.4375 -> 93), and the score is built from those whole numbers:

    risk_score = min(100, highest points + 5 * (number of other metrics with points >= 45))

A server with nothing crossing scores 0. The forecast's "p90" basis is the pessimistic
quantile: for cpu_used_pct it is 100 - the p10 of cpu_idle_pct. NaN or infinite values
(current or forecast) never cross. A value at warning now whose p50 stays there scores
65 (p50 crossing at eta 5), more than the 60 of the current row.

Levels, by score: healthy 0-29, watch 30-49, warning 50-69, critical 70-100.

Risk factors: one per risk metric that scores > 0, its highest-scoring condition (ties go
to the earlier row of the table above), most points first, then by metric name:
    {"metric": "mem_used_pct", "severity": "critical", "threshold": 95.0, "basis": "p50",
     "eta_minutes": 35, "value": 95.41, "points": 93}
basis is "current" (eta 0), "p50" or "p90"; value is the current value or the forecast
value at the crossing step, rounded to 2 decimals. Alerts list servers at or above a level,
highest score first, with their top 3 factors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data_contract import METRIC_COLUMNS

RISK_THRESHOLDS: dict[str, tuple[float, float]] = {
    "cpu_used_pct": (85.0, 95.0),
    "mem_used_pct": (85.0, 95.0),
    "swap_used_pct": (10.0, 30.0),
    "cpu_iowait_pct": (15.0, 30.0),
    "disk_usage_pct": (85.0, 95.0),
    "load_per_core": (1.0, 2.0),
}
RISK_METRICS: tuple[str, ...] = tuple(RISK_THRESHOLDS)
# The contract column each risk metric is read from (cpu_used_pct = 100 - the column,
# load_per_core = the column / cores; the others are the column itself).
RISK_SOURCES: dict[str, str] = {
    "cpu_used_pct": "cpu_idle_pct",
    "mem_used_pct": "mem_used_pct",
    "swap_used_pct": "swap_used_pct",
    "cpu_iowait_pct": "cpu_iowait_pct",
    "disk_usage_pct": "disk_usage_pct",
    "load_per_core": "load_average",
}
SEVERITIES: tuple[str, ...] = ("warning", "critical")

# (basis, severity, points at eta 0, points at ETA_SPAN_MINUTES), in tie-break order.
CONDITIONS: tuple[tuple[str, str, float, float], ...] = (
    ("current", "critical", 100.0, 100.0),
    ("current", "warning", 60.0, 60.0),
    ("p50", "critical", 95.0, 70.0),
    ("p90", "critical", 80.0, 50.0),
    ("p50", "warning", 65.0, 45.0),
    ("p90", "warning", 50.0, 30.0),
)
STEP_MINUTES = 5
ETA_SPAN_MINUTES = 480
BONUS_POINTS = 5  # per additional metric with at least BONUS_MIN_POINTS
BONUS_MIN_POINTS = 45
MAX_SCORE = 100

LEVELS: tuple[tuple[str, int], ...] = (
    ("healthy", 0),
    ("watch", 30),
    ("warning", 50),
    ("critical", 70),
)
LEVEL_NAMES: tuple[str, ...] = tuple(name for name, _ in LEVELS)

_SOURCE_INDEX = [METRIC_COLUMNS.index(RISK_SOURCES[m]) for m in RISK_METRICS]
_CPU, _LOAD = RISK_METRICS.index("cpu_used_pct"), RISK_METRICS.index("load_per_core")
_THRESHOLDS = np.array([RISK_THRESHOLDS[m] for m in RISK_METRICS])  # (M, 2)
_FORECAST_BASES = ("p50", "p90")
# Flat (metric, quantile) columns of a trajectory step for the p50 and p90 paths; the
# p90 path of cpu_used_pct (100 - idle) is 100 - idle's p10, the pessimistic side.
_P50 = [3 * i + 1 for i in _SOURCE_INDEX]
_P90 = [3 * i + (0 if m == _CPU else 2) for m, i in enumerate(_SOURCE_INDEX)]
# Each condition's forecast basis: index into _FORECAST_BASES, -1 = current.
_COND_BASIS = np.array([(("current",) + _FORECAST_BASES).index(c[0]) - 1 for c in CONDITIONS])


@dataclass(frozen=True)
class Assessment:
    """One server's risk: score 0-100, its level and the factors behind it."""

    score: int
    level: str
    factors: list[dict]


def level_for(score: float) -> str:
    """The level of a risk score (see LEVELS); a score below 0 or NaN is an error."""
    for name, low in reversed(LEVELS):
        if score >= low:
            return name
    raise ValueError(f"risk score must be >= 0, got {score!r}")


def risk_metrics(values: np.ndarray, cores: np.ndarray) -> dict[str, np.ndarray]:
    """Each risk metric's array of shape values.shape[:-1].

    values (..., 14) in data_contract.METRIC_COLUMNS order; cores broadcastable to
    values[..., 0] (NaN, zero or negative = unknown: load_per_core is NaN). Infinite
    values come back as NaN (missing).
    """
    values = np.asarray(values, dtype=np.float64)
    if values.shape[-1:] != (len(METRIC_COLUMNS),):
        raise ValueError(f"values must end in {len(METRIC_COLUMNS)} metrics, got {values.shape}")
    derived = _derive(values[..., _SOURCE_INDEX], cores)
    return {name: derived[..., m] for m, name in enumerate(RISK_METRICS)}


def _derive(x: np.ndarray, cores: np.ndarray, axis: int = -1) -> np.ndarray:
    """x: the RISK_SOURCES columns along axis, turned into the risk metrics in place."""
    cores = np.asarray(cores, dtype=np.float64)
    cores = np.where(cores > 0, cores, np.nan)
    metrics = np.moveaxis(x, axis, 0)  # a view: writing to it writes to x
    np.subtract(100.0, metrics[_CPU], out=metrics[_CPU])
    np.divide(metrics[_LOAD], cores, out=metrics[_LOAD])
    np.copyto(x, np.nan, where=np.isinf(x))
    return x


def _forecast_paths(trajectory: np.ndarray, cores: np.ndarray) -> np.ndarray:
    """trajectory (B, H, 14, 3) -> risk metric paths (B, H, 2, M), p50 then p90.

    One gather of the needed columns: the large trajectory is read once.
    """
    b, h, n, q = trajectory.shape
    picked = np.take(trajectory.reshape(b * h, n * q), _P50 + _P90, axis=1)
    paths = picked.reshape(b, h, 2, len(RISK_METRICS)).astype(np.float64, copy=False)
    return _derive(paths, cores[:, None, None])


def _first_steps(paths: np.ndarray) -> np.ndarray:
    """paths (B, H, P, M) -> the 1-based step of the first value >= each threshold, 0 if
    none: (B, M, P, 2), the last axis warning, critical. Only the servers with a value at
    or above a warning threshold are searched (a whole row compared at once is cheap)."""
    b, h, p, m = paths.shape
    steps = np.zeros((b, m, p, len(SEVERITIES)), dtype=np.int64)
    warning = np.tile(_THRESHOLDS[:, 0], h * p)
    rows = np.flatnonzero((paths.reshape(b, h * p * m) >= warning).any(axis=1))
    if rows.size:
        some = paths[rows] if rows.size < b else paths
        steps[rows] = _search(np.ascontiguousarray(some.transpose(3, 2, 0, 1)))
    return steps


def _search(paths: np.ndarray) -> np.ndarray:
    """paths (M, P, R, H), steps last -> first crossing steps (R, M, P, 2), 0 = none."""
    steps = np.empty(paths.shape[:-1] + (len(SEVERITIES),), dtype=np.int64)
    for m, thresholds in enumerate(_THRESHOLDS):
        for severity, threshold in enumerate(thresholds):
            crossed = paths[m] >= threshold
            first = crossed.argmax(axis=-1)  # 0 also when nothing crosses
            steps[m, ..., severity] = np.where(crossed[..., 0] | (first > 0), first + 1, 0)
    return steps.transpose(2, 0, 1, 3)


def _condition_points(now: np.ndarray, steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """now (B, M) current risk metrics, steps (B, M, P, 2) first crossings -> the points
    and the step (0 = current) of every condition, both (B, M, C)."""
    now_crossed = now[..., None] >= _THRESHOLDS
    points, at_step = [], []
    for (_, severity, at_zero, at_span), p in zip(CONDITIONS, _COND_BASIS, strict=True):
        s = SEVERITIES.index(severity)
        step = np.zeros(now.shape, np.int64) if p < 0 else steps[:, :, p, s]
        crossed = now_crossed[..., s] if p < 0 else step > 0
        fraction = np.minimum(step * STEP_MINUTES, ETA_SPAN_MINUTES) / ETA_SPAN_MINUTES
        points.append(np.where(crossed, at_zero - (at_zero - at_span) * fraction, 0.0))
        at_step.append(step)
    return np.stack(points, axis=-1), np.stack(at_step, axis=-1)


def _check_shapes(current: np.ndarray, trajectory: np.ndarray) -> None:
    n = len(METRIC_COLUMNS)
    if current.ndim != 2 or current.shape[1] != n:
        raise ValueError(f"current must be (B, {n}), got {current.shape}")
    if trajectory.ndim != 4 or trajectory.shape[1] < 1 or trajectory.shape[2:] != (n, 3):
        raise ValueError(f"trajectory must be (B, H, {n}, 3), got {trajectory.shape}")
    if trajectory.shape[0] != current.shape[0]:
        raise ValueError("current and trajectory must have the same batch size")


def assess(
    current: np.ndarray, trajectory: np.ndarray, cores: np.ndarray | None = None
) -> list[Assessment]:
    """Risk of each of B servers.

    current (B, 14) values at the forecast origin; trajectory (B, H, 14, 3) the forecast's
    p10/p50/p90 per step and metric (quantile axis last); cores (B,), a scalar or None
    (unknown: load is not scored).
    """
    current, trajectory = np.asarray(current, dtype=np.float64), np.asarray(trajectory)
    _check_shapes(current, trajectory)
    cores = np.broadcast_to(np.nan if cores is None else cores, current.shape[:1])
    now = _derive(current[:, _SOURCE_INDEX], cores)
    paths = _forecast_paths(trajectory, cores)
    points, steps = _condition_points(now, _first_steps(paths))
    best = points.argmax(axis=-1)  # (B, M): the first in CONDITIONS wins ties
    metric_points = np.floor(np.take_along_axis(points, best[..., None], -1)[..., 0] + 0.5)
    bonus = BONUS_POINTS * np.maximum((metric_points >= BONUS_MIN_POINTS).sum(-1) - 1, 0)
    scores = np.minimum(metric_points.max(axis=-1, initial=0.0) + bonus, MAX_SCORE)
    step = np.take_along_axis(steps, best[..., None], -1)[..., 0]
    return _assessments(scores, metric_points, best, step, now, paths)


def _assessments(
    scores: np.ndarray,
    points: np.ndarray,
    best: np.ndarray,
    step: np.ndarray,
    now: np.ndarray,
    paths: np.ndarray,
) -> list[Assessment]:
    """The Assessments; factor dicts are built only for the servers that score > 0."""
    out = [Assessment(0, LEVELS[0][0], []) for _ in range(len(scores))]
    rows = np.flatnonzero(scores > 0)
    best, step = best[rows], step[rows]
    basis = _COND_BASIS[best]
    metric = np.arange(len(RISK_METRICS))
    ahead = paths[rows[:, None], np.maximum(step - 1, 0), np.maximum(basis, 0), metric]
    value = np.where(basis < 0, now[rows], ahead)
    columns = (scores[rows], points[rows], best, step * STEP_MINUTES, value)
    for i, score, *row in zip(rows.tolist(), *(a.tolist() for a in columns), strict=True):
        out[i] = Assessment(int(score), level_for(score), _factors(*row))
    return out


def _factors(points: list, best: list, eta: list, value: list) -> list[dict]:
    """One server's factor dicts, for the metrics that score > 0, most points first."""
    factors = []
    for m, p in enumerate(points):
        if p <= 0:
            continue
        basis, severity, _, _ = CONDITIONS[best[m]]
        factor = {
            "metric": RISK_METRICS[m],
            "severity": severity,
            "threshold": RISK_THRESHOLDS[RISK_METRICS[m]][SEVERITIES.index(severity)],
            "basis": basis,
            "eta_minutes": int(eta[m]),
            "value": round(value[m], 2),
            "points": int(p),
        }
        factors.append(factor)
    return sorted(factors, key=lambda f: (-f["points"], f["metric"]))


def alerts(
    assessments: dict[str, Assessment], min_level: str = "warning", max_factors: int = 3
) -> list[dict]:
    """Current alerts: one per server whose level is at least min_level, most severe first.

    Each is {"server", "level", "risk_score", "factors"} with the server's top max_factors
    factors (copies); ordered by risk score descending, then server name.
    """
    if min_level not in LEVEL_NAMES:
        raise ValueError(f"min_level must be one of {LEVEL_NAMES}, got {min_level!r}")
    floor = LEVEL_NAMES.index(min_level)
    chosen = [(n, a) for n, a in assessments.items() if LEVEL_NAMES.index(a.level) >= floor]
    chosen.sort(key=lambda item: (-item[1].score, item[0]))
    return [
        {
            "server": name,
            "level": a.level,
            "risk_score": a.score,
            "factors": [dict(f) for f in a.factors[:max_factors]],
        }
        for name, a in chosen
    ]
