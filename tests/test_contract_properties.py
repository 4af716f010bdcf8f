"""Property tests of the data contract: generated from its own bounds and types.

Valid records (every metric within METRICS' range and kind, a state of VALID_STATES, a
printable name, an ISO 8601 timestamp from 2000 on) always validate; a record broken in one way
(out of range, wrong type, missing key, bad state, bad timestamp, unknown or deprecated
key) is always rejected with an error that names the broken field, in a batch at the
broken record's index. The same for frames (validate_schema / require_valid). The
strategies are shared with tests/test_fuzz.py, which posts them to /feed.
"""

from __future__ import annotations

import string
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

import data_contract as dc

# database=None: no .hypothesis/ directory in the working tree; deadline=None: a shared
# 2-core machine makes timings noisy.
FAST = settings(
    max_examples=150,
    derandomize=True,  # the same examples every run: make test must be repeatable
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
RECORDS = TypeAdapter(list[dc.MetricRecord])
MISSING = object()  # a mutation that deletes the key
NAME_CHARS = string.ascii_letters + string.digits + "-_."
EARLIEST = datetime(2000, 1, 1, 14)  # the contract's floor, at the largest offset (+14:00)
LATEST = datetime(2099, 12, 31)

# --- strategies of valid records ----------------------------------------------------


def metric_values(spec: dc.MetricSpec) -> st.SearchStrategy[float | int]:
    """Any value the contract allows for one metric (unbounded ones capped at 1e9)."""
    high = spec.high if spec.high is not None else 1e9
    if spec.kind == "int":
        return st.integers(int(spec.low), int(high))
    return st.floats(spec.low, high, allow_nan=False, allow_infinity=False)


def server_names() -> st.SearchStrategy[str]:
    """Names the contract accepts: short ids, and printable unicode (inner spaces too)
    between two visible characters."""
    ids = st.text(NAME_CHARS, min_size=1, max_size=40)
    printable = st.text(st.characters(codec="utf-8").filter(str.isprintable), max_size=30)
    edge = st.sampled_from(NAME_CHARS)
    padded = st.tuples(edge, printable, edge)
    return ids | padded.map("".join)


def timestamps(
    earliest: datetime = EARLIEST, latest: datetime = LATEST
) -> st.SearchStrategy[datetime]:
    """Naive (taken as UTC) or aware datetimes with offsets of up to 14 hours."""
    offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
    zones = st.none() | st.just(timezone.utc) | offsets
    return st.datetimes(earliest, latest, timezones=zones)


def iso(moment: datetime) -> str:
    """ISO 8601 as senders write it: '...Z' for UTC, else the offset (or none: naive)."""
    text = moment.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


@st.composite
def valid_records(
    draw: st.DrawFn,
    names: st.SearchStrategy[str] | None = None,
    stamps: st.SearchStrategy[datetime] | None = None,
) -> dict[str, Any]:
    """A JSON-ready record the contract accepts, drawn from its own bounds and types."""
    moment = draw(timestamps() if stamps is None else stamps)
    record: dict[str, Any] = {
        "timestamp": iso(moment),
        "server_name": draw(server_names() if names is None else names),
        "state": draw(st.sampled_from(dc.VALID_STATES)),
    }
    for spec in dc.METRICS:
        record[spec.name] = draw(metric_values(spec))
    return record


# --- strategies of broken records: (field, bad value or MISSING) ---------------------


def out_of_range(spec: dc.MetricSpec) -> st.SearchStrategy[float | int]:
    below = st.floats(max_value=spec.low, exclude_max=True, allow_nan=False, allow_infinity=False)
    if spec.kind == "int":
        below = st.integers(-(10**12), int(spec.low) - 1)
    if spec.high is None:
        return below
    above = st.floats(min_value=spec.high, exclude_min=True, allow_infinity=False)
    return below | (st.integers(int(spec.high) + 1, 10**12) if spec.kind == "int" else above)


def wrong_types(spec: dc.MetricSpec) -> st.SearchStrategy[Any]:
    """Values no number parser accepts: words, null, containers (and 1.5 in an int column)."""
    words = st.text(string.ascii_letters, min_size=1, max_size=12).filter(
        lambda w: w.lower() not in {"inf", "infinity", "nan"}
    )
    other = st.none() | st.lists(st.integers(0, 9), max_size=2) | st.just({})
    fraction = st.integers(0, 10**6).map(lambda i: i + 0.5)
    return words | other | (fraction if spec.kind == "int" else st.nothing())


def bad_timestamps() -> st.SearchStrategy[Any]:
    """Strings without digits, impossible dates and times, non-strings."""
    words = st.text(string.ascii_letters + " :-", max_size=20)
    impossible = st.sampled_from(
        [
            "2025-13-01T00:00:00Z",
            "2025-02-30T00:00:00Z",
            "2025-06-15T25:00:00Z",
            "2025-06-15T12:61:00Z",
            "15/06/2025 12:00",
            "2025-06-15T12:00:00+25:00",
        ]
    )
    return words | impossible | st.none() | st.booleans() | st.just([]) | st.just({})


def bad_states() -> st.SearchStrategy[Any]:
    unknown = st.text(max_size=20).filter(lambda s: s not in dc.VALID_STATES)
    shouted = st.sampled_from(dc.VALID_STATES).map(str.upper)
    return unknown | shouted | st.none() | st.integers(-(10**6), 10**6)


def bad_names() -> st.SearchStrategy[Any]:
    blank = st.text(" \t\n\r", max_size=5)
    too_long = st.integers(254, 400).map(lambda n: "x" * n)
    invisible = st.sampled_from(["\x00", "\x1b", "\u200b", "\u2028", "\ufeff", "\u00a0"])
    hidden = st.tuples(st.text(NAME_CHARS, min_size=1), invisible).map("".join)
    spaced = st.text(NAME_CHARS, min_size=1).map(lambda n: n + " ")
    others = st.none() | st.integers(-(10**6), 10**6) | st.just(["a"])
    return blank | too_long | hidden | spaced | others


def mutations() -> st.SearchStrategy[tuple[str, Any]]:
    """One way to break a record: (the field to name, its bad value or MISSING)."""
    metric = st.sampled_from(dc.METRICS)
    return st.one_of(
        metric.flatmap(lambda s: out_of_range(s).map(lambda v: (s.name, v))),
        metric.flatmap(lambda s: wrong_types(s).map(lambda v: (s.name, v))),
        st.sampled_from(dc.REQUIRED_COLUMNS).map(lambda c: (c, MISSING)),
        bad_states().map(lambda v: ("state", v)),
        bad_timestamps().map(lambda v: ("timestamp", v)),
        bad_names().map(lambda v: ("server_name", v)),
        st.sampled_from(sorted(dc.DEPRECATED_COLUMNS)).map(lambda c: (c, 1.0)),
        st.text(string.ascii_lowercase, min_size=1, max_size=10)
        .filter(lambda k: k not in dc.REQUIRED_COLUMNS)
        .map(lambda k: (k, 0)),
    )


def broken(record: dict[str, Any], field: str, value: Any) -> dict[str, Any]:
    """record with field set to value (or removed, for MISSING)."""
    out = dict(record)
    if value is MISSING:
        del out[field]
    else:
        out[field] = value
    return out


@st.composite
def invalid_records(draw: st.DrawFn, **valid: Any) -> tuple[dict[str, Any], str]:
    """(a record broken in exactly one field, that field's name)."""
    field, value = draw(mutations())
    return broken(draw(valid_records(**valid)), field, value), field


def fields_named(exc: ValidationError) -> set[str]:
    return {error["field"] for error in dc.describe_validation_errors(exc)}


# --- records ------------------------------------------------------------------------


@FAST
@given(valid_records())
def test_valid_records_validate_and_keep_their_values(record: dict[str, Any]) -> None:
    parsed = dc.MetricRecord.model_validate(record)
    assert parsed.timestamp.utcoffset() == timedelta(0)
    given_moment = datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00"))
    expected = given_moment if given_moment.tzinfo else given_moment.replace(tzinfo=timezone.utc)
    assert parsed.timestamp == expected
    assert parsed.server_name == record["server_name"] and parsed.state == record["state"]
    for spec in dc.METRICS:
        assert getattr(parsed, spec.name) == record[spec.name]


@FAST
@given(st.lists(valid_records(), max_size=8))
def test_valid_batches_validate_as_json(records: list[dict[str, Any]]) -> None:
    assert len(RECORDS.validate_json(orjson.dumps(records))) == len(records)


@FAST
@given(valid_records(), st.sampled_from(dc.INT_COLUMNS), st.integers(0, 365))
def test_integral_floats_are_accepted_in_int_columns(
    record: dict[str, Any], column: str, value: int
) -> None:
    parsed = dc.MetricRecord.model_validate({**record, column: float(value)})
    assert getattr(parsed, column) == value and isinstance(getattr(parsed, column), int)


@FAST
@given(invalid_records())
def test_a_broken_record_is_rejected_naming_the_field(case: tuple[dict[str, Any], str]) -> None:
    record, field = case
    with pytest.raises(ValidationError) as caught:
        dc.MetricRecord.model_validate(record)
    errors = dc.describe_validation_errors(caught.value)
    assert {e["field"] for e in errors} == {field}, errors
    assert all(e["index"] is None and e["problem"] for e in errors)
    if field in dc.DEPRECATED_COLUMNS:
        assert errors[0]["problem"].startswith("deprecated field, replaced by ")
    elif field not in dc.REQUIRED_COLUMNS:
        assert errors[0]["problem"] == "unknown field"


@FAST
@given(st.lists(valid_records(), min_size=1, max_size=6), st.data())
def test_a_batch_names_each_broken_record_by_index(
    records: list[dict[str, Any]], data: st.DataObject
) -> None:
    positions = data.draw(st.sets(st.integers(0, len(records) - 1), min_size=1))
    expected = {}
    for i in positions:
        field, value = data.draw(mutations())
        records[i], expected[i] = broken(records[i], field, value), field
    with pytest.raises(ValidationError) as caught:
        RECORDS.validate_json(orjson.dumps(records))
    found = {(e["index"], e["field"]) for e in dc.describe_validation_errors(caught.value)}
    assert found == set(expected.items())


@FAST
@given(valid_records(), st.sampled_from(dc.METRIC_COLUMNS), st.booleans())
def test_a_boolean_metric_is_rejected_like_in_frames(
    record: dict[str, Any], column: str, flag: bool
) -> None:
    with pytest.raises(ValidationError):
        dc.MetricRecord.model_validate({**record, column: flag})


@FAST
@given(st.text(max_size=260), st.data())
def test_the_record_model_and_frames_agree_with_the_name_rule(
    name: str, data: st.DataObject
) -> None:
    """server_name_problem is the rule; MetricRecord and validate_schema apply it alike."""
    record = {**data.draw(valid_records()), "server_name": name}
    problem = dc.server_name_problem(name)
    try:
        dc.MetricRecord.model_validate(record)
    except ValidationError as exc:
        assert problem is not None and fields_named(exc) == {"server_name"}
    else:
        assert problem is None
    ok, errors = dc.validate_schema(frame_of([record]))
    assert ok == (problem is None), errors


# --- frames -------------------------------------------------------------------------


def frame_of(records: list[dict[str, Any]]) -> pd.DataFrame:
    """Records as a contract frame: datetime timestamps, int64 and float64 metrics."""
    frame = pd.DataFrame(records, columns=list(dc.REQUIRED_COLUMNS))
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601")
    for spec in dc.METRICS:
        frame[spec.name] = frame[spec.name].astype("int64" if spec.kind == "int" else "float64")
    return frame


frames = st.lists(valid_records(), min_size=1, max_size=12).map(frame_of)


@FAST
@given(frames)
def test_valid_frames_validate(frame: pd.DataFrame) -> None:
    assert dc.validate_schema(frame) == (True, [])
    dc.require_valid(frame)


def _frame_mutations() -> st.SearchStrategy[tuple[str, str]]:
    """(column, kind of damage) for frames."""
    metric = st.sampled_from(dc.METRIC_COLUMNS)
    return st.one_of(
        st.tuples(metric, st.sampled_from(["below", "above", "nan", "text"])),
        st.tuples(st.sampled_from(dc.INT_COLUMNS), st.just("float")),
        st.tuples(st.sampled_from(dc.REQUIRED_COLUMNS), st.just("drop")),
        st.tuples(st.just("state"), st.just("unknown")),
        st.tuples(st.just("timestamp"), st.sampled_from(["text", "nat"])),
        st.tuples(st.just("server_name"), st.sampled_from(["blank", "numeric"])),
        st.tuples(st.sampled_from(sorted(dc.DEPRECATED_COLUMNS)), st.just("add")),
    )


def _set(frame: pd.DataFrame, column: str, row: int, value: float) -> None:
    """frame[column][row] = value, keeping an int column int64 while value is integral."""
    values = frame[column].to_numpy(copy=True)
    integral = dc.METRIC_SPECS[column].kind == "int" and float(value).is_integer()
    values = values.astype("int64" if integral else "float64")
    values[row] = value
    frame[column] = values


def damage(frame: pd.DataFrame, column: str, kind: str, row: int) -> pd.DataFrame | None:
    """The frame with one column damaged at row (None: damage impossible for the column)."""
    out, spec = frame.copy(), dc.METRIC_SPECS.get(column)
    if kind == "below":
        _set(out, column, row, spec.low - (1 if spec.kind == "int" else 0.5))
    elif kind == "above":
        if spec.high is None:
            return None
        _set(out, column, row, spec.high + (1 if spec.kind == "int" else 0.5))
    elif kind == "nan":
        _set(out, column, row, np.nan)
    elif kind == "float":
        out[column] = out[column].astype("float64")
    elif kind == "drop":
        out = out.drop(columns=[column])
    elif kind == "unknown":
        out.loc[out.index[row], "state"] = "exploded"
    elif kind == "text":
        out[column] = out[column].astype(str)
    elif kind == "nat":
        out.loc[out.index[row], "timestamp"] = pd.NaT
    elif kind == "blank":
        out.loc[out.index[row], "server_name"] = "  "
    elif kind == "numeric":
        out["server_name"] = np.arange(len(out))
    elif kind == "add":
        out[column] = 1.0
    return out


def _names_the_row(column: str, kind: str) -> bool:
    """Damage reported by row (a NaN in an int column is a dtype error instead)."""
    if kind == "nan":
        return dc.METRIC_SPECS[column].kind == "float"
    return kind in ("below", "above", "unknown", "nat", "blank")


@FAST
@given(frames, _frame_mutations(), st.data())
def test_a_damaged_frame_is_rejected_naming_the_column(
    frame: pd.DataFrame, mutation: tuple[str, str], data: st.DataObject
) -> None:
    column, kind = mutation
    row = data.draw(st.integers(0, len(frame) - 1))
    damaged = damage(frame, column, kind, row)
    if damaged is None:
        return
    ok, errors = dc.validate_schema(damaged)
    assert not ok and errors
    if kind == "drop":
        assert errors == [f"missing required column(s): {column}"]
    else:
        assert all(e.startswith(f"{column}:") for e in errors), errors
    if _names_the_row(column, kind):
        assert f"first at row(s) {row}" in errors[0], errors
    with pytest.raises(dc.ContractError) as caught:
        dc.require_valid(damaged, source="fuzz")
    assert caught.value.errors == errors and str(caught.value).startswith("fuzz breaks")


# --- the aggregation rule ---------------------------------------------------


@FAST
@given(frames)
def test_step_aggregation_follows_the_contract_rule(frame: pd.DataFrame) -> None:
    ticks = frame[list(dc.METRIC_COLUMNS)].to_numpy(dtype=np.float64)
    step = dc.aggregate_ticks(ticks)
    assert np.allclose(step[dc.MEAN_INDEX], ticks[:, dc.MEAN_INDEX].mean(axis=0))
    assert np.array_equal(step[dc.MAX_INDEX], ticks[:, dc.MAX_INDEX].max(axis=0))
    assert np.array_equal(step[dc.LAST_INDEX], ticks[-1, dc.LAST_INDEX])
    # a step of valid ticks is a valid step: the aggregate stays within every range
    low = np.array([m.low for m in dc.METRICS])
    high = np.array([np.inf if m.high is None else m.high for m in dc.METRICS])
    assert (step >= low - 1e-9).all() and (step <= high + 1e-9).all()
