"""The contract's facts: columns, states, metric ranges, the step, the quantiles and the
reported horizons, and how ticks aggregate into steps. Import them from data_contract."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal

import numpy as np

CONTRACT_VERSION = "2.0.0"

VALID_STATES: tuple[str, ...] = (
    "critical_issue",
    "healthy",
    "heavy_load",
    "idle",
    "maintenance",
    "morning_spike",
    "offline",
    "recovery",
)


@dataclass(frozen=True)
class MetricSpec:
    """One metric column: its dtype kind and its allowed closed range."""

    name: str
    kind: Literal["float", "int"]
    low: float = 0.0
    high: float | None = None


def _pct(name: str) -> MetricSpec:
    return MetricSpec(name, "float", 0.0, 100.0)


METRICS: tuple[MetricSpec, ...] = (
    _pct("cpu_user_pct"),
    _pct("cpu_sys_pct"),
    _pct("cpu_iowait_pct"),
    _pct("cpu_idle_pct"),
    _pct("java_cpu_pct"),
    _pct("mem_used_pct"),
    _pct("swap_used_pct"),
    _pct("disk_usage_pct"),
    MetricSpec("net_in_mb_s", "float"),
    MetricSpec("net_out_mb_s", "float"),
    MetricSpec("back_close_wait", "int"),
    MetricSpec("front_close_wait", "int"),
    MetricSpec("load_average", "float"),
    MetricSpec("uptime_days", "int", 0.0, 365.0),
)
METRIC_SPECS: dict[str, MetricSpec] = {m.name: m for m in METRICS}
METRIC_COLUMNS: tuple[str, ...] = tuple(m.name for m in METRICS)
# Each metric's closed range in METRIC_COLUMNS order (no upper bound: inf), for clipping.
METRIC_LOW = np.array([m.low for m in METRICS])
METRIC_HIGH = np.array([np.inf if m.high is None else m.high for m in METRICS])
METRIC_LOW.flags.writeable = METRIC_HIGH.flags.writeable = False  # shared: never changed
PERCENT_COLUMNS: tuple[str, ...] = tuple(m.name for m in METRICS if m.high == 100.0)
INT_COLUMNS: tuple[str, ...] = tuple(m.name for m in METRICS if m.kind == "int")
ID_COLUMNS: tuple[str, ...] = ("timestamp", "server_name", "state")
REQUIRED_COLUMNS: tuple[str, ...] = ID_COLUMNS + METRIC_COLUMNS

DEPRECATED_COLUMNS: dict[str, str] = {
    "cpu_pct": "cpu_user_pct, cpu_sys_pct, cpu_iowait_pct, cpu_idle_pct, java_cpu_pct",
    "mem_pct": "mem_used_pct, swap_used_pct",
    "disk_io_mb_s": "net_in_mb_s, net_out_mb_s",
    "latency_ms": "load_average",
}

# Server names: at most this many characters (a DNS name's limit), printable (see
# server_name_problem), no leading or trailing space.
SERVER_NAME_MAX_LENGTH = 253
# Timestamps lie in [TIMESTAMP_FLOOR, TIMESTAMP_CEILING): no monitored fleet predates the
# floor (a tick dated 1970 is a missing value, not history), and the ceiling keeps every
# time type of the stack in range (pandas' nanoseconds end in 2262).
TIMESTAMP_FLOOR = datetime(2000, 1, 1, tzinfo=timezone.utc)
TIMESTAMP_CEILING = datetime(2200, 1, 1, tzinfo=timezone.utc)
TIMESTAMP_RANGE = (
    f"must lie from {TIMESTAMP_FLOOR:%Y-%m-%dT%H:%M:%SZ} up to (not including) "
    f"{TIMESTAMP_CEILING:%Y-%m-%dT%H:%M:%SZ}"
)

TIME_FEATURES: tuple[str, ...] = ("hour", "day_of_week", "month", "is_weekend", "is_business_hours")
BUSINESS_HOURS = (9, 17)  # [start, end) local hour, Monday to Friday
MORNING_SPIKE_HOURS = (9, 11)  # inclusive, as in the spec's state logic


# --- steps, quantiles and reported horizons ---------------------------------------------

# One model step is 5 minutes: ticks are aggregated into steps of this length, and the
# model's encoder, horizon and reported horizons are counted in these steps.
STEP_SECONDS = 300
STEPS_PER_HOUR = 3600 // STEP_SECONDS  # 12
STEPS_PER_DAY = 24 * STEPS_PER_HOUR  # 288: one day, the seasonal period
# The forecast's quantiles: the model's quantile levels and their names in the API.
QUANTILE_LEVELS: tuple[float, ...] = (0.1, 0.5, 0.9)
QUANTILES: tuple[str, ...] = ("p10", "p50", "p90")
# The horizons /predict reports and the accuracy is scored at, in steps after the origin.
REPORTED_HORIZONS: dict[str, int] = {
    "30m": 30 * 60 // STEP_SECONDS,
    "1h": STEPS_PER_HOUR,
    "8h": 8 * STEPS_PER_HOUR,
}


# --- aggregation of raw ticks into model steps ----------------------------------------

# How the ticks of one server within one step become the step's values (the daemon's
# buffers, the generator's backfill and the training corpus all use this rule):
# - mean: gauges (CPU shares, java CPU, memory, swap, disk, network rates, load); their
#   mean is the step's level, and the CPU shares still sum to 100;
# - max: the close-wait counters; the peak keeps a burst or a leak visible that a mean
#   would halve, and stays an integer;
# - last (by timestamp): uptime_days (and the state), which describe the server now.
AGGREGATION: dict[str, Literal["mean", "max", "last"]] = {
    **{name: "mean" for name in METRIC_COLUMNS},
    "back_close_wait": "max",
    "front_close_wait": "max",
    "uptime_days": "last",
}
MEAN_COLUMNS: tuple[str, ...] = tuple(c for c, r in AGGREGATION.items() if r == "mean")
MAX_COLUMNS: tuple[str, ...] = tuple(c for c, r in AGGREGATION.items() if r == "max")
LAST_COLUMNS: tuple[str, ...] = tuple(c for c, r in AGGREGATION.items() if r == "last")
# positions in METRIC_COLUMNS order, for (..., 14) arrays
MEAN_INDEX = np.array([METRIC_COLUMNS.index(c) for c in MEAN_COLUMNS])
MAX_INDEX = np.array([METRIC_COLUMNS.index(c) for c in MAX_COLUMNS])
LAST_INDEX = np.array([METRIC_COLUMNS.index(c) for c in LAST_COLUMNS])
