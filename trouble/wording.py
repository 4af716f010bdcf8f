"""Why a metric is flagged, in words an operator can check against the graphs.

reason() builds one sentence from the evidence facts of one metric (trouble.evidence.
FACTS) and the origin's clock time, from the strongest evidence down, at most two
statements joined by "; ":

    CPU is at 97% now (critical 95%)
    the p50 (or p90) forecast crosses 95% at 15:20
    CPU reached 97% yesterday at 14:05 and has tracked yesterday within 4 points for 3 h
    CPU reached 96% 40 min ago and was at or above 95% for 2 h 10 min of the last 24 h
                                            (a critical value in the last 12 h)
    memory rose from 70% to 88% in 3 h (6 points an hour)
    CPU is at 88% (critical 95%)            (when nothing else applies)

Clock times are the origin's zone (pass an aware datetime in the zone to show); a time
on the next day says "tomorrow". Pure functions.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import risk
from trouble.evidence import DAY, HOUR, TRACK

NAMES = {
    "cpu_used_pct": "CPU",
    "mem_used_pct": "memory",
    "swap_used_pct": "swap",
    "cpu_iowait_pct": "iowait",
    "disk_usage_pct": "disk",
    "load_per_core": "load per core",
}
STEP = timedelta(minutes=risk.STEP_MINUTES)
MAX_STATEMENTS = 2
RECENT = DAY // 2  # a critical value in the last 12 h is worth saying


def value_text(metric: str, value: float) -> str:
    """97% for percentages, 1.35 for load per core."""
    return f"{value:.2f}" if metric == "load_per_core" else f"{value:.0f}%"


def amount_text(metric: str, amount: float) -> str:
    """A difference: '4 points' (percentages, rounded up), '0.30' (load per core)."""
    if metric == "load_per_core":
        return f"{amount:.2f}"
    points = max(int(math.ceil(amount - 1e-9)), 1)
    return f"{points} point" if points == 1 else f"{points} points"


def duration_text(steps: float) -> str:
    """5-minute steps as '3 h', '1 h 30 min', '40 min'."""
    hours, minutes = divmod(int(round(steps)) * risk.STEP_MINUTES, 60)
    if not hours:
        return f"{minutes} min"
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def clock_text(origin: datetime, minutes: float, relative: bool = True) -> str:
    """The clock time `minutes` after the origin with its zone, '15:20 UTC' or (relative)
    '01:10 UTC tomorrow'; a naive origin gives no zone."""
    when = origin + timedelta(minutes=float(minutes))
    zone = when.tzname()
    text = when.strftime("%H:%M") + (f" {zone}" if zone else "")
    tomorrow = relative and (when.date() - origin.date()).days == 1
    return text + (" tomorrow" if tomorrow else "")


def _current(metric: str, f: dict[str, float]) -> str | None:
    critical = risk.RISK_THRESHOLDS[metric][1]
    if f["now"] >= critical:
        now, limit = value_text(metric, f["now"]), value_text(metric, critical)
        return f"{NAMES[metric]} is at {now} now (critical {limit})"
    return None


def _forecast(metric: str, f: dict[str, float], origin: datetime) -> str | None:
    critical = value_text(metric, risk.RISK_THRESHOLDS[metric][1])
    for basis in ("p50", "p90"):
        step = f[f"{basis}_cross_step"]
        if step > 0:
            when = clock_text(origin, step * risk.STEP_MINUTES)
            return f"the {basis} forecast crosses {critical} at {when}"
    return None


def _yesterday(metric: str, f: dict[str, float], origin: datetime) -> str | None:
    if math.isnan(f["yday_cross_minutes"]):
        return None
    value = value_text(metric, f["yday_cross_value"])
    when = clock_text(origin - timedelta(days=1), f["yday_cross_minutes"], relative=False)
    text = f"{NAMES[metric]} reached {value} yesterday at {when}"
    if f["track_steps"] >= HOUR:
        within = amount_text(metric, f["track_error"])
        text += f" and has tracked yesterday within {within} for {duration_text(f['track_steps'])}"
    return text


def _recent(metric: str, f: dict[str, float]) -> str | None:
    if f["since_critical"] < 0 or f["since_critical"] > RECENT:
        return None
    value = value_text(metric, f["last_critical_value"])
    text = f"{NAMES[metric]} reached {value} {duration_text(f['since_critical'])} ago"
    steps = f["critical_steps_24h"]
    if steps > 1:
        critical = value_text(metric, risk.RISK_THRESHOLDS[metric][1])
        text += f" and was at or above {critical} for {duration_text(steps)} of the last 24 h"
    return text


def _rise(metric: str, f: dict[str, float]) -> str | None:
    rise = f["now"] - f["value_3h_ago"]
    if not f["trend_per_hour"] > 0 or not rise > 0:
        return None
    start, end = value_text(metric, f["value_3h_ago"]), value_text(metric, f["now"])
    speed = amount_text(metric, f["trend_per_hour"])
    return f"{NAMES[metric]} rose from {start} to {end} in {duration_text(TRACK)} ({speed} an hour)"


def reason(metric: str, facts: dict[str, float], origin: datetime) -> str:
    """One metric's reason from its facts (a dict of trouble.evidence.FACTS scalars)."""
    critical = risk.RISK_THRESHOLDS[metric][1]
    now = _current(metric, facts)
    if now:
        return now
    found = [
        _forecast(metric, facts, origin),
        _yesterday(metric, facts, origin),
        _recent(metric, facts),
        _rise(metric, facts),
    ]
    statements = [s for s in found if s][:MAX_STATEMENTS]
    if not statements:
        now = value_text(metric, facts["now"])
        return f"{NAMES[metric]} is at {now} (critical {value_text(metric, critical)})"
    return "; ".join(statements)
