"""Validation of a frame of contract rows: every problem named with sample values and rows."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from contract.names import server_name_problem
from contract.spec import (
    CONTRACT_VERSION,
    DEPRECATED_COLUMNS,
    METRICS,
    REQUIRED_COLUMNS,
    TIMESTAMP_CEILING,
    TIMESTAMP_FLOOR,
    TIMESTAMP_RANGE,
    VALID_STATES,
    MetricSpec,
)

_SAMPLE = 5


def _sample(values: Iterable[Any]) -> str:
    shown = list(values)[:_SAMPLE]
    return ", ".join(repr(v.item() if hasattr(v, "item") else v) for v in shown)


def _rows(mask: np.ndarray | pd.Series) -> str:
    rows = np.flatnonzero(np.asarray(mask))
    return f"{len(rows)} row(s), first at row(s) {_sample(rows)}"


def _check_columns(df: pd.DataFrame) -> list[str]:
    errors = []
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        errors.append(f"missing required column(s): {', '.join(missing)}")
    for old, new in DEPRECATED_COLUMNS.items():
        if old in df.columns:
            errors.append(f"{old}: deprecated column (contract 2.0.0), replaced by {new}")
    return errors


def _check_timestamp(ts: pd.Series) -> list[str]:
    if not pd.api.types.is_datetime64_any_dtype(ts):
        return [f"timestamp: must be a datetime dtype, got {ts.dtype} (e.g. {_sample(ts)})"]
    bad = ts.isna()
    if bad.any():
        return [f"timestamp: missing values (NaT) in {_rows(bad)}"]
    zone = "UTC" if ts.dt.tz is not None else None  # naive timestamps are UTC
    floor = pd.Timestamp(TIMESTAMP_FLOOR).tz_convert(zone)
    ceiling = pd.Timestamp(TIMESTAMP_CEILING).tz_convert(zone)
    out = ((ts < floor) | (ts >= ceiling)).to_numpy()
    if not out.any():
        return []
    return [f"timestamp: {TIMESTAMP_RANGE}; got {_sample(ts[out].astype(str))} in {_rows(out)}"]


_BLANK = ("must not be empty", "must contain a non-whitespace character")


def _check_server_name(names: pd.Series) -> list[str]:
    if pd.api.types.is_numeric_dtype(names):
        return [f"server_name: must be strings, got {names.dtype}"]
    missing = names.isna().to_numpy()
    other = ~missing & ~np.array([isinstance(n, str) for n in names], dtype=bool)
    if other.any():
        return [f"server_name: must be strings, got {_sample(names[other])} in {_rows(other)}"]
    rules = {n: _frame_name_problem(n) for n in pd.unique(names[~missing])}
    found = names.map(rules).where(~missing, "empty or missing name")
    errors = []
    for problem in pd.unique(found.dropna()):
        rows = (found == problem).to_numpy()
        shown = "" if problem == "empty or missing name" else f" (e.g. {_sample(names[rows])})"
        errors.append(f"server_name: {problem}{shown} in {_rows(rows)}")
    return errors


def _frame_name_problem(name: str) -> str | None:
    problem = server_name_problem(name)
    return "empty or missing name" if problem in _BLANK else problem


def _check_state(states: pd.Series) -> list[str]:
    bad = ~states.isin(VALID_STATES)
    if not bad.any():
        return []
    unknown = pd.unique(states[bad].astype(str))
    return [
        f"state: invalid value(s) {_sample(sorted(unknown))} in {_rows(bad)}; "
        f"valid states are {', '.join(VALID_STATES)}"
    ]


def _check_metric(spec: MetricSpec, col: pd.Series) -> list[str]:
    name = spec.name
    if pd.api.types.is_bool_dtype(col) or not pd.api.types.is_numeric_dtype(col):
        return [f"{name}: must be numeric ({spec.kind}), got {col.dtype} (e.g. {_sample(col)})"]
    if spec.kind == "int" and not pd.api.types.is_integer_dtype(col):
        return [f"{name}: must be an integer dtype, got {col.dtype} (e.g. {_sample(col)})"]
    values = col.to_numpy(dtype=np.float64, na_value=np.nan)
    nan = ~np.isfinite(values)
    if nan.any():
        return [f"{name}: NaN or infinite values in {_rows(nan)}"]
    errors = []
    low = values < spec.low
    if low.any():
        what = "negative value(s)" if spec.low == 0 else f"value(s) below {spec.low}"
        errors.append(f"{name}: {what} {_sample(values[low])} in {_rows(low)}")
    if spec.high is not None:
        high = values > spec.high
        if high.any():
            bounds = f"[{spec.low:g}, {spec.high:g}]"
            errors.append(
                f"{name}: value(s) {_sample(values[high])} outside {bounds} in {_rows(high)}"
            )
    return errors


def validate_schema(df: pd.DataFrame) -> tuple[bool, list[str]]:
    """Validate a frame against the contract; returns (is_valid, errors).

    Each error names the column, the rule broken and a sample of offending values and
    rows. Extra columns (time features, server_id) are allowed; deprecated ones are not.
    """
    errors = _check_columns(df)
    if len(df) == 0:
        errors.append("frame has no rows")
    if "timestamp" in df.columns:
        errors += _check_timestamp(df["timestamp"])
    if "server_name" in df.columns:
        errors += _check_server_name(df["server_name"])
    if "state" in df.columns:
        errors += _check_state(df["state"])
    for spec in METRICS:
        if spec.name in df.columns:
            errors += _check_metric(spec, df[spec.name])
    return (not errors, errors)


class ContractError(ValueError):
    """Data that breaks the contract; .errors lists every problem found."""

    def __init__(self, errors: list[str], source: str = "data") -> None:
        self.errors = errors
        super().__init__(f"{source} breaks data contract {CONTRACT_VERSION}: " + "; ".join(errors))


def require_valid(df: pd.DataFrame, source: str = "data") -> None:
    """Raise ContractError listing every problem if the frame breaks the contract."""
    ok, errors = validate_schema(df)
    if not ok:
        raise ContractError(errors, source)
