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
predict_linear over 6 h) reaches critical within LEAD_MAX steps. The estimate's flag
(trouble/): its level for the metric is warning or critical.

Scores: recall = flagged events / events; false-alarm rate = flagged negatives /
negatives; lead time = steps from the origin to the first critical step of a flagged event;
precision at an event rate r = recall r / (recall r + false-alarm rate (1 - r)), the share
of flags that are events where events make up r of the events and negatives (the set's
own rate: events / (events + negatives)). Calibration: predicted probabilities in BINS
against the observed frequency of the outcome.
"""

from __future__ import annotations

import numpy as np

import risk
from trouble import levels

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


def estimate_flags(
    probabilities: np.ndarray, now: np.ndarray, thresholds: levels.Thresholds
) -> np.ndarray:
    """(N, M): the early-warning estimate's level is warning or critical (trouble.levels);
    probabilities (N, M, 2), now (N, M) current risk metrics."""
    return levels.flags(probabilities, now, thresholds)


def precision_at(recall: float, false_alarm_rate: float, rate: float) -> float:
    """Share of flags that are events where events are `rate` of events + negatives."""
    hits, false = recall * rate, false_alarm_rate * (1.0 - rate)
    return float(hits / (hits + false)) if hits + false > 0 else float("nan")


def with_precision(scores: dict) -> dict:
    """warning_scores() plus the event rate of its set and the precision at that rate."""
    total = scores["events"] + scores["negatives"]
    rate = scores["events"] / total if total else float("nan")
    precision = precision_at(scores["recall"], scores["false_alarm_rate"], rate)
    return scores | {"event_rate": rate, "precision": precision}


BINS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def calibration_table(p: np.ndarray, outcome: np.ndarray, bins: tuple = BINS) -> list[dict]:
    """Per bin of predicted probability [low, high) (the last includes 1): origins, mean
    predicted and observed frequency; p and outcome 1-D, NaN outcomes left out."""
    known = ~np.isnan(outcome) & ~np.isnan(p)
    p, outcome = p[known], outcome[known]
    index = np.clip(np.searchsorted(bins, p, side="right") - 1, 0, len(bins) - 2)
    rows = []
    for b in range(len(bins) - 1):
        mine = index == b
        n = int(mine.sum())
        rows.append(
            {
                "bin": f"{bins[b]:.2f}-{bins[b + 1]:.2f}",
                "origins": n,
                "predicted": float(p[mine].mean()) if n else float("nan"),
                "observed": float(outcome[mine].mean()) if n else float("nan"),
            }
        )
    return rows
