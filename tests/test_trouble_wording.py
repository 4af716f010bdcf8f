"""Reasons in words (trouble/wording.py), from evidence built on hand-made series."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np

import risk
from trouble import evidence as ev
from trouble import levels, wording

M = len(risk.RISK_METRICS)
CPU = risk.RISK_METRICS.index("cpu_used_pct")
MEM = risk.RISK_METRICS.index("mem_used_pct")
LOAD = risk.RISK_METRICS.index("load_per_core")
ORIGIN = datetime(2025, 1, 6, 14, 0, tzinfo=timezone.utc)  # the origin step's time


def history(level: float = 50.0) -> np.ndarray:
    h = np.full((1, ev.HISTORY_STEPS, M), level)
    h[..., risk.RISK_METRICS.index("swap_used_pct")] = 0.0
    h[..., risk.RISK_METRICS.index("cpu_iowait_pct")] = 1.0
    h[..., LOAD] = 0.5
    return h


def flat_paths(h: np.ndarray) -> np.ndarray:
    return np.repeat(h[:, -1:, None, :], ev.HORIZON, axis=1).repeat(2, axis=2)


def facts(e: ev.Evidence, m: int) -> dict[str, float]:
    return {k: float(v[0, m]) for k, v in e.facts.items()}


def test_yesterday_crossing_and_tracking() -> None:
    h = history()
    yesterday = ev.HISTORY_STEPS - 1 - ev.DAY  # the origin's clock time, yesterday
    h[0, yesterday + 1 : yesterday + 20, CPU] = np.linspace(97.2, 60, 19)  # 14:05 yesterday
    h[0, -ev.TRACK :, CPU] = h[0, yesterday - ev.TRACK + 1 : yesterday + 1, CPU] + 3.4
    e = ev.compute(h, flat_paths(h))
    assert wording.reason("cpu_used_pct", facts(e, CPU), ORIGIN) == (
        "CPU reached 97% yesterday at 14:05 UTC and has tracked yesterday within 4 points for 3 h"
    )


def test_forecast_crossing_comes_first() -> None:
    h = history()
    paths = flat_paths(h)
    paths[0, 15:, 1, CPU] = 96.0  # the pessimistic path from step 16 (15:20)
    paths[0, 40:, 0, MEM] = 96.0  # memory's p50 from step 41 (17:25)
    paths[0, 80:, 0, LOAD] = 2.5  # load per core p50 from step 81: 20:45
    e = ev.compute(h, paths)
    assert wording.reason("cpu_used_pct", facts(e, CPU), ORIGIN) == (
        "the p90 forecast crosses 95% at 15:20 UTC"
    )
    assert wording.reason("mem_used_pct", facts(e, MEM), ORIGIN) == (
        "the p50 forecast crosses 95% at 17:25 UTC"
    )
    late = datetime(2025, 1, 6, 22, 0, tzinfo=timezone.utc)
    assert wording.reason("load_per_core", facts(e, LOAD), late) == (
        "the p50 forecast crosses 2.00 at 04:45 UTC tomorrow"
    )


def test_rise_recent_crossing_current_and_plain() -> None:
    h = history()
    h[0, -ev.TRACK :, MEM] = 70.0 + 0.5 * np.arange(1, ev.TRACK + 1)  # to 88 in 3 h
    h[0, -30:-22, CPU] = 96.0  # 8 steps critical, the last 22 steps (1 h 50 min) ago
    e = ev.compute(h, flat_paths(h))
    assert wording.reason("mem_used_pct", facts(e, MEM), ORIGIN) == (
        "memory rose from 70% to 88% in 3 h (6 points an hour)"
    )
    assert wording.reason("cpu_used_pct", facts(e, CPU), ORIGIN) == (
        "CPU reached 96% 1 h 50 min ago and was at or above 95% for 40 min of the last 24 h"
    )
    hot = facts(e, CPU) | {"now": 96.4}
    assert wording.reason("cpu_used_pct", hot, ORIGIN) == "CPU is at 96% now (critical 95%)"
    disk = risk.RISK_METRICS.index("disk_usage_pct")
    assert wording.reason("disk_usage_pct", facts(e, disk), ORIGIN) == (
        "disk is at 50% (critical 95%)"
    )


def test_flat_server_without_pattern_or_crossing_does_not_alert() -> None:
    """A server with no recurring pattern and no forecast crossing: no factor, no reason."""
    h = history()
    e = ev.compute(h, flat_paths(h))
    probabilities = np.full((1, M, 2), 0.001)  # what a fitted model gives it (test_warning_fit)
    t = levels.Thresholds(critical=0.5, warning=0.3, watch=0.1)
    (a,) = levels.assess(probabilities, e, t, [ORIGIN])
    assert a.level == "healthy" and a.factors == []


def test_text_helpers() -> None:
    assert wording.duration_text(36) == "3 h" and wording.duration_text(18) == "1 h 30 min"
    assert wording.duration_text(8) == "40 min"
    assert wording.amount_text("cpu_used_pct", 0.2) == "1 point"
    assert wording.amount_text("cpu_used_pct", 3.01) == "4 points"
    assert wording.amount_text("load_per_core", 0.304) == "0.30"
    assert wording.clock_text(ORIGIN, -25) == "13:35 UTC"
