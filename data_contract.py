"""The data contract (spec section 3) as code: the single source of truth.

Every component (generator, trainer, daemon, adapters, dashboard) imports its column
names, states, ranges, step length, quantiles, reported horizons and server-name encoding
from here. Version 2.0.0 is the NordIQ Metrics Framework: 3 identification columns plus 14
metrics = 17 required columns.

This module is the public face; the parts live in contract/ (spec: the facts; names:
server names; checks: frame validation; record: one record) and are re-exported here.
This module holds the functions on contract rows: step aggregation, the state logic and
the time features.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from contract.checks import ContractError, require_valid, validate_schema
from contract.names import (
    create_server_mapping,
    decode_server_name,
    encode_server_name,
    server_name_problem,
)
from contract.record import MetricRecord, describe_validation_errors, validation_problems
from contract.spec import (
    AGGREGATION,
    BUSINESS_HOURS,
    CONTRACT_VERSION,
    DEPRECATED_COLUMNS,
    ID_COLUMNS,
    INT_COLUMNS,
    LAST_COLUMNS,
    LAST_INDEX,
    MAX_COLUMNS,
    MAX_INDEX,
    MEAN_COLUMNS,
    MEAN_INDEX,
    METRIC_COLUMNS,
    METRIC_HIGH,
    METRIC_LOW,
    METRIC_SPECS,
    METRICS,
    MORNING_SPIKE_HOURS,
    PERCENT_COLUMNS,
    QUANTILE_LEVELS,
    QUANTILES,
    REPORTED_HORIZONS,
    REQUIRED_COLUMNS,
    SERVER_NAME_MAX_LENGTH,
    STEP_SECONDS,
    STEPS_PER_DAY,
    STEPS_PER_HOUR,
    TIME_FEATURES,
    TIMESTAMP_CEILING,
    TIMESTAMP_FLOOR,
    TIMESTAMP_RANGE,
    VALID_STATES,
    MetricSpec,
)

__all__ = [
    "AGGREGATION", "BUSINESS_HOURS", "CONTRACT_VERSION", "DEPRECATED_COLUMNS", "ID_COLUMNS",
    "INT_COLUMNS", "LAST_COLUMNS", "LAST_INDEX", "MAX_COLUMNS", "MAX_INDEX", "MEAN_COLUMNS",
    "MEAN_INDEX", "METRIC_COLUMNS", "METRIC_HIGH", "METRIC_LOW", "METRIC_SPECS", "METRICS",
    "MORNING_SPIKE_HOURS", "PERCENT_COLUMNS", "QUANTILE_LEVELS", "QUANTILES",
    "REPORTED_HORIZONS", "REQUIRED_COLUMNS", "SERVER_NAME_MAX_LENGTH", "STEP_SECONDS",
    "STEPS_PER_DAY", "STEPS_PER_HOUR", "TIME_FEATURES", "TIMESTAMP_CEILING",
    "TIMESTAMP_FLOOR", "TIMESTAMP_RANGE", "VALID_STATES", "ContractError", "MetricRecord",
    "MetricSpec", "aggregate_rows", "aggregate_ticks", "create_server_mapping",
    "decode_server_name", "describe_validation_errors", "determine_state",
    "encode_server_name", "require_valid", "server_name_problem", "time_features",
    "validate_schema", "validation_problems",
]  # fmt: skip


# --- aggregation of raw ticks into model steps (the rule: AGGREGATION) ------------------


def aggregate_ticks(ticks: Any) -> np.ndarray:
    """Step values of ticks by AGGREGATION: (..., ticks, 14) -> (..., 14) float64.

    The last axis holds the 14 metrics in METRIC_COLUMNS order, the one before it the
    ticks of one step in time order: (ticks, 14) for one step, (steps, ticks, 14) for
    many. Means, maxima, and the last tick's value for the "last" columns.
    """
    ticks = np.asarray(ticks, dtype=np.float64)
    if ticks.ndim < 2 or ticks.shape[-1] != len(METRIC_COLUMNS) or ticks.shape[-2] == 0:
        raise ValueError(f"expected (..., ticks >= 1, {len(METRIC_COLUMNS)}), got {ticks.shape}")
    out = np.empty(ticks.shape[:-2] + ticks.shape[-1:], dtype=np.float64)
    out[..., MEAN_INDEX] = ticks[..., MEAN_INDEX].mean(axis=-2)
    out[..., MAX_INDEX] = ticks[..., MAX_INDEX].max(axis=-2)
    out[..., LAST_INDEX] = ticks[..., -1, LAST_INDEX]
    return out


def aggregate_rows(frame: pd.DataFrame, by: list[Any]) -> pd.DataFrame:
    """One row per group of ``by`` (column names or Series, e.g. server and step) from
    contract rows in time order within each group: the metrics by AGGREGATION and the
    state the latest, as the daemon keeps it. The groups become the index."""
    rules = {**AGGREGATION, "state": "last"}
    return frame.groupby(by, sort=True)[list(rules)].agg(rules)


# --- state determination ------------------------------------------------------------


def determine_state(
    cpu_pct: Any,
    mem_pct: Any,
    hour: Any,
    is_business_hours: Any,
    anomaly_score: Any = 0.0,
    offline: Any = False,
    maintenance: Any = False,
    recovering: Any = False,
) -> np.ndarray:
    """The spec's state determination logic, vectorised over numpy-compatible inputs.

    Precedence: offline, maintenance (operator flags), critical_issue (anomaly > 0.7,
    CPU > 95 or memory > 95), heavy_load (CPU or memory > 80), recovery (flag),
    idle (CPU < 5 and memory < 10), morning_spike (business hours, 9 <= hour <= 11),
    otherwise healthy. Returns an array of state strings (0-d for scalar inputs).
    """
    cpu, mem, hour = np.asarray(cpu_pct), np.asarray(mem_pct), np.asarray(hour)
    conditions = [
        np.asarray(offline, dtype=bool),
        np.asarray(maintenance, dtype=bool),
        (np.asarray(anomaly_score) > 0.7) | (cpu > 95) | (mem > 95),
        (cpu > 80) | (mem > 80),
        np.asarray(recovering, dtype=bool),
        (cpu < 5) & (mem < 10),
        np.asarray(is_business_hours, dtype=bool)
        & (hour >= MORNING_SPIKE_HOURS[0])
        & (hour <= MORNING_SPIKE_HOURS[1]),
    ]
    choices = ["offline", "maintenance", "critical_issue", "heavy_load", "recovery", "idle"]
    return np.select(conditions, [*choices, "morning_spike"], default="healthy")


# --- time features -------------------------------------------------------------------


def time_features(timestamps: pd.Series | pd.DatetimeIndex) -> pd.DataFrame:
    """The known-in-advance features of each timestamp, as small integers.

    is_business_hours is Monday to Friday, 09:00 to 16:59, in the timestamps' own zone.
    """
    ts = pd.DatetimeIndex(timestamps)
    hour = ts.hour.to_numpy()
    dow = ts.dayofweek.to_numpy()
    weekend = dow >= 5
    business = ~weekend & (hour >= BUSINESS_HOURS[0]) & (hour < BUSINESS_HOURS[1])
    index = timestamps.index if isinstance(timestamps, pd.Series) else None
    return pd.DataFrame(
        {
            "hour": hour.astype(np.int8),
            "day_of_week": dow.astype(np.int8),
            "month": ts.month.to_numpy().astype(np.int8),
            "is_weekend": weekend.astype(np.int8),
            "is_business_hours": business.astype(np.int8),
        },
        index=index,
    )
