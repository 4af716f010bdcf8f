"""The data contract (spec section 3) as code: the single source of truth.

Every component (generator, trainer, daemon, adapters, dashboard) imports its column
names, states, ranges and server-name encoding from here. Version 2.0.0 is the NordIQ
Metrics Framework: 3 identification columns plus 14 metrics = 17 required columns.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic_core import PydanticCustomError

logger = logging.getLogger(__name__)

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


# --- aggregation of raw ticks into model steps ----------------------------------------

# One model step is 5 minutes: ticks are aggregated into steps of this length, and the
# model's encoder, horizon and reported horizons are counted in these steps.
STEP_SECONDS = 300

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


# --- frame validation ----------------------------------------------------------------

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


def server_name_problem(name: str) -> str | None:
    """Why a server name breaks the contract, or None. A name has 1 to
    SERVER_NAME_MAX_LENGTH characters, all printable as str.isprintable defines it (no
    control, format, separator or other invisible character, Unicode categories C and Z,
    except the plain space), and neither starts nor ends with a space."""
    if not name:
        return "must not be empty"
    if len(name) > SERVER_NAME_MAX_LENGTH:
        return f"must have at most {SERVER_NAME_MAX_LENGTH} characters"
    if not name.strip():
        return "must contain a non-whitespace character"
    if not name.isprintable():
        return "must not contain control, format or other invisible characters"
    if name[0] == " " or name[-1] == " ":
        return "must not start or end with a space"
    return None


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


# --- one record (the daemon's /feed body is a list of these) -------------------------


def _not_bool(value: Any) -> Any:
    """JSON true/false is not a number here (as in frames, where a bool column is refused)."""
    if isinstance(value, bool):
        raise ValueError("must be a number, not a boolean")
    return value


def _as_utc(value: datetime) -> datetime:
    """Naive timestamps are taken as UTC, aware ones converted to UTC, inside the contract's
    range (checked first: comparing aware datetimes never overflows, converting can)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    if not TIMESTAMP_FLOOR <= value < TIMESTAMP_CEILING:
        raise PydanticCustomError("timestamp_range", TIMESTAMP_RANGE)
    return value.astimezone(timezone.utc)


def _printable_name(name: str) -> str:
    """server_name_problem, for what the field's length constraints leave to it."""
    problem = server_name_problem(name)
    if problem is not None:
        raise PydanticCustomError("server_name", problem)
    return name


Percent = Annotated[float, Field(ge=0.0, le=100.0, allow_inf_nan=False), BeforeValidator(_not_bool)]
NonNegative = Annotated[float, Field(ge=0.0, allow_inf_nan=False), BeforeValidator(_not_bool)]
Counter = Annotated[int, Field(ge=0), BeforeValidator(_not_bool)]


class MetricRecord(BaseModel):
    """One contract record: a server's 14 metrics at one timestamp.

    Timestamps may be ISO 8601 strings or datetimes; naive ones are taken as UTC.
    Unknown and deprecated fields are rejected (see describe_validation_errors).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    timestamp: Annotated[datetime, AfterValidator(_as_utc)]
    server_name: Annotated[
        str,
        Field(min_length=1, max_length=SERVER_NAME_MAX_LENGTH),
        AfterValidator(_printable_name),
    ]
    state: Literal[VALID_STATES]  # type: ignore[valid-type]
    cpu_user_pct: Percent
    cpu_sys_pct: Percent
    cpu_iowait_pct: Percent
    cpu_idle_pct: Percent
    java_cpu_pct: Percent
    mem_used_pct: Percent
    swap_used_pct: Percent
    disk_usage_pct: Percent
    net_in_mb_s: NonNegative
    net_out_mb_s: NonNegative
    back_close_wait: Counter
    front_close_wait: Counter
    load_average: NonNegative
    uptime_days: Annotated[int, Field(ge=0, le=365), BeforeValidator(_not_bool)]


_FRIENDLY = {
    "string_too_short": "must not be empty",
    "missing": "required field missing",
}


def describe_validation_errors(exc: ValidationError) -> list[dict[str, Any]]:
    """Turn a pydantic error on a record or a list of records into {index, field, problem}.

    index is the record's position in the batch (None for a single record).
    """
    return [
        {"index": index, "field": field, "problem": problem + got}
        for index, field, problem, got in validation_problems(exc)
    ]


def validation_problems(
    exc: ValidationError, inputs: bool = True
) -> list[tuple[int | None, str, str, str]]:
    """(index, field, problem, got) of each error: problem names the rule broken, got is
    " (got <the value>)" where the value helps (always "" without inputs, which is faster)."""
    out = []
    for err in exc.errors(include_url=False, include_context=False, include_input=inputs):
        loc = list(err["loc"])
        index = loc.pop(0) if loc and isinstance(loc[0], int) else None
        field = ".".join(str(p) for p in loc) if loc else "(record)"
        field = field or '""'  # a key that is the empty string
        problem, got = err["msg"], ""
        if err["type"] == "extra_forbidden":
            replaced = DEPRECATED_COLUMNS.get(field)
            problem = f"deprecated field, replaced by {replaced}" if replaced else "unknown field"
        elif err["type"] in _FRIENDLY:
            problem = _FRIENDLY[err["type"]]
        elif "input" in err and field != "(record)":
            got = f" (got {err['input']!r:.80})"
        out.append((index, field, problem, got))
    return out


# --- server name encoding (spec section 4) -------------------------------------------


def encode_server_name(server_name: str) -> str:
    """Deterministic id: first 8 hex digits of SHA-256, as an int, modulo 1,000,000."""
    hash_int = int(hashlib.sha256(server_name.encode("utf-8")).hexdigest()[:8], 16)
    return str(hash_int % 1_000_000)


def create_server_mapping(server_names: Iterable[str]) -> dict[str, dict[str, str]]:
    """Bidirectional mapping {'name_to_id': {...}, 'id_to_name': {...}}.

    Ids live in a space of 1,000,000, so large fleets have a few collisions (two names
    share an embedding id). id_to_name then keeps the first name in sorted order and a
    warning lists the pair; components key their state by server_name, never by id.
    """
    name_to_id = {name: encode_server_name(name) for name in sorted(set(server_names))}
    id_to_name: dict[str, str] = {}
    for name, sid in name_to_id.items():
        if sid in id_to_name:
            logger.warning("server id collision: %r and %r share id %s", id_to_name[sid], name, sid)
            continue
        id_to_name[sid] = name
    return {"name_to_id": name_to_id, "id_to_name": id_to_name}


def decode_server_name(server_id: str, mapping: dict[str, dict[str, str]]) -> str:
    """Original name for an id, or 'UNKNOWN_{id}' if the mapping does not know it."""
    return mapping["id_to_name"].get(server_id, f"UNKNOWN_{server_id}")
