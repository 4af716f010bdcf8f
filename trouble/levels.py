"""Risk levels and scores from the early-warning probabilities (pure numpy).

Per risk metric, from p1 = P(critical within 1 h), p8 = P(critical within 8 h) and the
current value (risk.LEVELS names, thresholds chosen on training data by
training.warning_fit for the precision targets in TARGETS):

    critical   the metric is at or above critical now, or p1 >= thresholds.critical
    warning    p8 >= thresholds.warning
    watch      p8 >= thresholds.watch, or the metric is at or above warning now
    healthy    otherwise

A metric at warning now is watched, not alerted: it alerts when the estimate says that
critical is likely, as for any other metric. Points 0-100 follow the level's band of
risk.LEVELS and rise with the probability inside it (the score sorts servers by how
likely trouble is): critical now 100; p1 >= t_c: 70 + 29 (p1 - t_c) / (1 - t_c);
p8 >= t_w: 50 + 19 (p8 - t_w) / (1 - t_w); p8 >= t_v: 30 + 19 (p8 - t_v) / (t_w - t_v);
else 29 p8 / t_v; at warning now: at least 30; the highest applies, rounded down. A
server's score is its highest metric's points, and its level the level of that score.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

import numpy as np

import risk
from trouble import wording
from trouble.evidence import CRITICAL, WARNING, Evidence

# Level: (horizon index into the probabilities' last axis, target precision).
TARGETS: dict[str, tuple[int, float]] = {
    "critical": (0, 0.8),
    "warning": (1, 0.6),
    "watch": (1, 0.25),
}
RULES = {
    "critical": "at or above critical now, or P(critical within 1 h) >= thresholds.critical",
    "warning": "P(critical within 8 h) >= thresholds.warning",
    "watch": "P(critical within 8 h) >= thresholds.watch, or at or above warning now",
    "healthy": "otherwise",
}
FLOOR = 0.05  # no level threshold below this probability (degenerate training data)
BANDS = {name: low for name, low in risk.LEVELS}  # the lowest score of each level
TOP = risk.MAX_SCORE - 1  # a forecast never scores 100: that is "critical now"


@dataclass(frozen=True)
class Thresholds:
    """Probability thresholds of the levels (see TARGETS); 1.0 means never."""

    critical: float
    warning: float
    watch: float

    def __post_init__(self) -> None:
        values = (self.critical, self.warning, self.watch)
        if not all(0.0 < v <= 1.0 for v in values) or self.watch > self.warning:
            raise ValueError(
                f"thresholds must lie in (0, 1] with watch <= warning, got {asdict(self)}"
            )

    def to_json(self) -> dict[str, float]:
        return asdict(self)


def _band(p: np.ndarray, low: float, high: float, start: int, end: int) -> np.ndarray:
    """Points rising from `start` at p = low to `end` at p = high (where p >= low)."""
    span = max(high - low, 1e-9)
    return start + (end - start) * np.clip((p - low) / span, 0.0, 1.0)


def metric_points(probabilities: np.ndarray, now: np.ndarray, t: Thresholds) -> np.ndarray:
    """probabilities (N, M, 2), now (N, M) current values -> (N, M) points 0-100 (NaN
    where the metric is unknown)."""
    p1, p8 = probabilities[..., 0], probabilities[..., 1]
    warning, critical = BANDS["warning"], BANDS["critical"]
    candidates = [
        np.where(p1 >= t.critical, _band(p1, t.critical, 1.0, critical, TOP), 0.0),
        np.where(p8 >= t.warning, _band(p8, t.warning, 1.0, warning, critical - 1), 0.0),
        np.where(p8 >= t.watch, _band(p8, t.watch, t.warning, BANDS["watch"], warning - 1), 0.0),
        _band(p8, 0.0, t.watch, 0, BANDS["watch"] - 1),
        np.where(now >= WARNING, float(BANDS["watch"]), 0.0),
        np.where(now >= CRITICAL, float(risk.MAX_SCORE), 0.0),
    ]
    points = np.floor(np.max(candidates, axis=0))
    return np.where(np.isnan(p8) | np.isnan(now), np.nan, points)


def level_names(points: np.ndarray) -> np.ndarray:
    """(...) points -> level names (object array); NaN points are healthy."""
    index = np.zeros(points.shape, dtype=np.int64)
    for i, (_, low) in enumerate(risk.LEVELS):
        index[np.nan_to_num(points, nan=-1.0) >= low] = i
    return np.array(risk.LEVEL_NAMES, dtype=object)[index]


def server_scores(points: np.ndarray) -> np.ndarray:
    """(N, M) metric points -> (N,) server scores: the highest (0 when none is known)."""
    return np.fmax.reduce(np.nan_to_num(points, nan=0.0), axis=1).astype(np.int64)


def flags(probabilities: np.ndarray, now: np.ndarray, t: Thresholds) -> np.ndarray:
    """(N, M) the metric is at level warning or critical (an alert)."""
    return metric_points(probabilities, now, t) >= BANDS["warning"]


def _eta(facts: dict[str, float]) -> int | None:
    """Minutes to the crossing the evidence points at: now, the forecast's, yesterday's."""
    if facts["now"] >= facts["critical"]:
        return 0
    for step in (facts["p50_cross_step"], facts["p90_cross_step"]):
        if step > 0:
            return int(step * risk.STEP_MINUTES)
    minutes = facts["yday_cross_minutes"]
    return int(minutes) if minutes > 0 else None


def factor(metric: int, points: float, p: np.ndarray, facts: dict, origin: datetime) -> dict:
    """One flagged metric's risk factor: risk.py's keys, the probabilities and the reason."""
    name = risk.RISK_METRICS[metric]
    return {
        "metric": name,
        "severity": risk.level_for(points),
        "threshold": risk.RISK_THRESHOLDS[name][1],
        "basis": "current" if facts["now"] >= facts["critical"] else "estimate",
        "eta_minutes": _eta(facts),
        "value": round(float(facts["now"]), 2),
        "points": int(points),
        "probability_1h": round(float(p[0]), 3),
        "probability_8h": round(float(p[1]), 3),
        "reason": wording.reason(name, facts, origin),
    }


def assess(
    probabilities: np.ndarray, evidence: Evidence, t: Thresholds, origins: list[datetime]
) -> list[risk.Assessment]:
    """Each server's score, level and factors (the metrics at watch or above, most points
    first), as risk.assess returns them; origins: each server's origin time, in the zone
    its reasons should show. Factors and reasons are built only for those metrics."""
    points = metric_points(probabilities, evidence.facts["now"], t)
    scores = server_scores(points).tolist()
    out = [risk.Assessment(s, risk.level_for(s), []) for s in scores]
    rows, metrics = np.nonzero(np.nan_to_num(points, nan=0.0) >= BANDS["watch"])
    if not len(rows):
        return out
    facts = {k: v[rows, metrics].tolist() for k, v in evidence.facts.items()}
    chances = probabilities[rows, metrics].tolist()
    for j, (i, m) in enumerate(zip(rows.tolist(), metrics.tolist(), strict=True)):
        mine = {k: v[j] for k, v in facts.items()} | {"critical": float(CRITICAL[m])}
        out[i].factors.append(factor(m, points[i, m], chances[j], mine, origins[i]))
    for i in set(rows.tolist()):
        out[i].factors.sort(key=lambda f: (-f["points"], f["metric"]))
    return out
