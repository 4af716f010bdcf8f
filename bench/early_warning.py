"""Early warnings: which forecast origins precede a critical crossing, and who flagged them.

For each origin and each risk metric of risk.py (cpu_used_pct, mem_used_pct, ...; values
derived with risk.risk_metrics, so load_per_core needs the server's cores):

* event: below its warning threshold at the origin, and its first step at or above
  critical lies LEAD_MIN to LEAD_MAX steps later;
* negative: below warning at the origin and for all LEAD_MAX following steps (all
  observed);
* neither: anything else (already at warning, a crossing within LEAD_MIN steps, a
  warning-level excursion without critical, missing data).

A flag is a yes/no per origin and risk metric. The daemon's flag: risk.assess on the
window's last row and the forecast gives level warning or critical with a risk factor on
that metric. A rule's flag: its forecast path (seasonal naive = yesterday's curve, or
predict_linear over 6 h) reaches critical within LEAD_MAX steps.

Scores: recall = flagged events / events; false-alarm rate = flagged negatives /
negatives; lead time = steps from the origin to the first critical step of a flagged event.
"""

from __future__ import annotations

import numpy as np

import risk

LEAD_MIN, LEAD_MAX = 6, 96
EVENT, NEGATIVE, NEITHER = 1, 0, -1
WARNING = np.array([risk.RISK_THRESHOLDS[m][0] for m in risk.RISK_METRICS])
CRITICAL = np.array([risk.RISK_THRESHOLDS[m][1] for m in risk.RISK_METRICS])
ALARM_LEVELS = ("warning", "critical")


def risk_values(values: np.ndarray, cores: np.ndarray) -> np.ndarray:
    """values (..., 14) -> (..., M) risk metrics in risk.RISK_METRICS order (NaN unknown).

    cores broadcastable to values[..., 0]."""
    derived = risk.risk_metrics(values, cores)
    return np.stack([derived[m] for m in risk.RISK_METRICS], axis=-1)


def first_crossing(path: np.ndarray, threshold: np.ndarray) -> np.ndarray:
    """path (N, H, M) -> (N, M) 1-based step of the first value >= threshold, 0 if none."""
    crossed = path >= threshold
    first = crossed.argmax(axis=1) + 1
    return np.where(crossed.any(axis=1), first, 0)


def label(now: np.ndarray, future: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """now (N, M), future (N, >=LEAD_MAX, M) true risk metrics -> labels (N, M) of
    EVENT / NEGATIVE / NEITHER and the 1-based step of the first critical value (0 none)."""
    future = future[:, :LEAD_MAX]
    below = now < WARNING  # NaN: False
    critical = first_crossing(future, CRITICAL)
    event = below & (critical >= LEAD_MIN)
    quiet = (future < WARNING).all(axis=1)  # NaN: not quiet
    labels = np.where(event, EVENT, np.where(below & quiet, NEGATIVE, NEITHER))
    return labels, critical


def daemon_flags(assessments: list[risk.Assessment]) -> np.ndarray:
    """(N, M): level warning or critical with a risk factor on the metric."""
    flags = np.zeros((len(assessments), len(risk.RISK_METRICS)), dtype=bool)
    for i, a in enumerate(assessments):
        if a.level in ALARM_LEVELS:
            for factor in a.factors:
                flags[i, risk.RISK_METRICS.index(factor["metric"])] = True
    return flags


def model_flags(current: np.ndarray, trajectory: np.ndarray, cores: np.ndarray) -> np.ndarray:
    """The daemon's flags for current (N, 14) and its forecast (N, H, 14, 3)."""
    return daemon_flags(risk.assess(current, trajectory, cores))


def rule_flags(path: np.ndarray, cores: np.ndarray) -> np.ndarray:
    """(N, M): a point forecast (N, H, 14) reaches critical within LEAD_MAX steps."""
    derived = risk_values(path[:, :LEAD_MAX], np.asarray(cores)[:, None])
    return first_crossing(derived, CRITICAL) > 0


def warning_scores(labels: np.ndarray, flags: np.ndarray, lead: np.ndarray) -> dict:
    """Recall, false-alarm rate and median lead (steps) of flags against labels."""
    events, negatives = labels == EVENT, labels == NEGATIVE
    hits = events & flags
    n_events, n_negatives = int(events.sum()), int(negatives.sum())
    return {
        "events": n_events,
        "negatives": n_negatives,
        "recall": float(hits.sum() / n_events) if n_events else float("nan"),
        "false_alarm_rate": (
            float((negatives & flags).sum() / n_negatives) if n_negatives else float("nan")
        ),
        "median_lead_steps": float(np.median(lead[hits])) if hits.any() else float("nan"),
    }
