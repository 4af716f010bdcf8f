"""The data contract: columns, states, validation errors, record model, name encoding."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import TypeAdapter, ValidationError

import data_contract as dc

SPEC_RECORD = {
    "timestamp": "2025-10-17T12:00:00Z",
    "server_name": "ppml0001",
    "state": "healthy",
    "cpu_user_pct": 65.4,
    "cpu_sys_pct": 12.3,
    "cpu_iowait_pct": 2.1,
    "cpu_idle_pct": 20.2,
    "java_cpu_pct": 45.0,
    "mem_used_pct": 85.2,
    "swap_used_pct": 0.0,
    "disk_usage_pct": 45.0,
    "net_in_mb_s": 25.3,
    "net_out_mb_s": 18.7,
    "back_close_wait": 0,
    "front_close_wait": 0,
    "load_average": 8.5,
    "uptime_days": 42.0,
}
BATCH = TypeAdapter(list[dc.MetricRecord])


def test_contract_shape() -> None:
    assert dc.CONTRACT_VERSION == "2.0.0"
    assert len(dc.REQUIRED_COLUMNS) == 17 and len(dc.METRIC_COLUMNS) == 14
    assert len(set(dc.REQUIRED_COLUMNS)) == 17
    assert sorted(dc.VALID_STATES) == list(dc.VALID_STATES) and len(dc.VALID_STATES) == 8
    assert set(dc.DEPRECATED_COLUMNS) == {"cpu_pct", "mem_pct", "disk_io_mb_s", "latency_ms"}
    assert set(dc.INT_COLUMNS) == {"back_close_wait", "front_close_wait", "uptime_days"}
    assert len(dc.PERCENT_COLUMNS) == 8


def test_valid_frame_passes(small_fleet: pd.DataFrame) -> None:
    assert dc.validate_schema(small_fleet) == (True, [])
    dc.require_valid(small_fleet)


def _only_error(frame: pd.DataFrame) -> str:
    ok, errors = dc.validate_schema(frame)
    assert not ok and len(errors) == 1, errors
    return errors[0]


def test_missing_column(small_fleet: pd.DataFrame) -> None:
    error = _only_error(small_fleet.drop(columns=["swap_used_pct", "load_average"]))
    assert "missing required column(s): swap_used_pct, load_average" in error


def test_deprecated_column(small_fleet: pd.DataFrame) -> None:
    error = _only_error(small_fleet.assign(cpu_pct=50.0))
    assert error.startswith("cpu_pct: deprecated column") and "cpu_user_pct" in error


def test_unknown_state_names_value_and_rows(small_fleet: pd.DataFrame) -> None:
    frame = small_fleet.copy()
    frame.loc[[3, 7], "state"] = "exploded"
    error = _only_error(frame)
    assert "state: invalid value(s) 'exploded'" in error
    assert "2 row(s), first at row(s) 3, 7" in error and "healthy" in error


@pytest.mark.parametrize("value", [-0.5, 100.5])
def test_percent_out_of_range(small_fleet: pd.DataFrame, value: float) -> None:
    frame = small_fleet.copy()
    frame.loc[5, "mem_used_pct"] = value
    error = _only_error(frame)
    assert error.startswith("mem_used_pct:") and str(value) in error and "row(s) 5" in error


def test_negative_counter_and_rate(small_fleet: pd.DataFrame) -> None:
    frame = small_fleet.copy()
    frame.loc[0, "back_close_wait"] = -3
    frame.loc[1, "net_in_mb_s"] = -1.0
    ok, errors = dc.validate_schema(frame)
    assert not ok
    assert any(e.startswith("back_close_wait: negative value(s) -3") for e in errors)
    assert any(e.startswith("net_in_mb_s: negative value(s) -1.0") for e in errors)


def test_nan_and_infinite(small_fleet: pd.DataFrame) -> None:
    frame = small_fleet.copy()
    frame.loc[2, "cpu_user_pct"] = np.nan
    frame.loc[4, "load_average"] = np.inf
    ok, errors = dc.validate_schema(frame)
    assert not ok
    assert "cpu_user_pct: NaN or infinite values in 1 row(s), first at row(s) 2" in errors
    assert "load_average: NaN or infinite values in 1 row(s), first at row(s) 4" in errors


def test_non_datetime_timestamp(small_fleet: pd.DataFrame) -> None:
    frame = small_fleet.assign(timestamp=small_fleet["timestamp"].astype(str))
    assert _only_error(frame).startswith("timestamp: must be a datetime dtype")


def test_missing_timestamp(small_fleet: pd.DataFrame) -> None:
    frame = small_fleet.copy()
    frame.loc[9, "timestamp"] = pd.NaT
    assert _only_error(frame) == "timestamp: missing values (NaT) in 1 row(s), first at row(s) 9"


@pytest.mark.parametrize("name", ["", "   ", None])
def test_empty_server_name(small_fleet: pd.DataFrame, name: str | None) -> None:
    frame = small_fleet.copy()
    frame.loc[6, "server_name"] = name
    assert _only_error(frame).startswith("server_name: empty or missing name in 1 row(s)")


def test_wrong_dtypes(small_fleet: pd.DataFrame) -> None:
    frame = small_fleet.assign(uptime_days=small_fleet["uptime_days"] + 0.5)
    assert _only_error(frame).startswith("uptime_days: must be an integer dtype, got float64")
    frame = small_fleet.assign(cpu_sys_pct="high")
    assert _only_error(frame).startswith("cpu_sys_pct: must be numeric (float)")


def test_uptime_above_365(small_fleet: pd.DataFrame) -> None:
    frame = small_fleet.copy()
    frame.loc[0, "uptime_days"] = 400
    assert "outside [0, 365]" in _only_error(frame)


def test_empty_frame_rejected(small_fleet: pd.DataFrame) -> None:
    assert _only_error(small_fleet.iloc[:0]) == "frame has no rows"


def test_require_valid_raises_with_every_error(small_fleet: pd.DataFrame) -> None:
    frame = small_fleet.assign(latency_ms=1.0, swap_used_pct=-1.0)
    with pytest.raises(dc.ContractError) as info:
        dc.require_valid(frame, source="training/x.parquet")
    assert len(info.value.errors) == 2
    assert str(info.value).startswith("training/x.parquet breaks data contract 2.0.0")


# --- record model -----------------------------------------------------------------


def test_spec_record_validates_verbatim() -> None:
    record = dc.MetricRecord.model_validate(SPEC_RECORD)
    assert record.timestamp == pd.Timestamp("2025-10-17T12:00:00Z").to_pydatetime()
    assert record.uptime_days == 42 and record.state == "healthy"


def test_naive_timestamp_is_utc() -> None:
    record = dc.MetricRecord.model_validate({**SPEC_RECORD, "timestamp": "2025-10-17T12:00:00"})
    assert record.timestamp.utcoffset().total_seconds() == 0
    shifted = dc.MetricRecord.model_validate({**SPEC_RECORD, "timestamp": "2025-10-17T14:00+02:00"})
    assert shifted.timestamp == record.timestamp


BAD_RECORDS = [
    ({"timestamp": "yesterday-ish"}, "timestamp", "valid datetime"),
    ({"state": "on_fire"}, "state", "'on_fire'"),
    ({"cpu_user_pct": 100.1}, "cpu_user_pct", "less than or equal to 100"),
    ({"swap_used_pct": -1}, "swap_used_pct", "greater than or equal to 0"),
    ({"back_close_wait": -2}, "back_close_wait", "greater than or equal to 0"),
    ({"net_out_mb_s": -0.1}, "net_out_mb_s", "greater than or equal to 0"),
    ({"load_average": float("nan")}, "load_average", "finite number"),
    ({"server_name": ""}, "server_name", "must not be empty"),
    ({"server_name": "   "}, "server_name", "non-whitespace"),
    ({"uptime_days": 366}, "uptime_days", "less than or equal to 365"),
    ({"mem_pct": 5.0}, "mem_pct", "deprecated field, replaced by mem_used_pct"),
    ({"colour": "blue"}, "colour", "unknown field"),
]


@pytest.mark.parametrize(("change", "field", "problem"), BAD_RECORDS)
def test_bad_record_names_field_and_problem(change: dict, field: str, problem: str) -> None:
    batch = [SPEC_RECORD, {**SPEC_RECORD, **change}]
    with pytest.raises(ValidationError) as info:
        BATCH.validate_python(batch)
    [error] = dc.describe_validation_errors(info.value)
    assert error["index"] == 1 and error["field"] == field
    assert problem in error["problem"]


def test_missing_field_is_reported() -> None:
    record = {k: v for k, v in SPEC_RECORD.items() if k != "disk_usage_pct"}
    with pytest.raises(ValidationError) as info:
        dc.MetricRecord.model_validate(record)
    assert dc.describe_validation_errors(info.value) == [
        {"index": None, "field": "disk_usage_pct", "problem": "required field missing"}
    ]


def test_validate_json_batch() -> None:
    import json

    records = BATCH.validate_json(json.dumps([SPEC_RECORD] * 3))
    assert len(records) == 3 and records[0].server_name == "ppml0001"


# --- server names and the timestamp range (issue 18, items 4 and 5) -----------------

BAD_NAMES = [
    "web\x00",  # a NUL: the state file's fixed-width strings dropped it (two servers, one name)
    "web\t01",
    "web\x7f",
    "a\u200bb",  # zero-width space (format)
    "\ufeffweb",  # byte order mark (format)
    "web\u2028",  # line separator
    "web\u00a001",  # no-break space: looks like a space, is not one
    " web",
    "web ",
    "x" * 254,
]
GOOD_NAMES = ["web", "wéb-01.example.com", "web 01", "a,b", "x" * 253, "サーバー1", "db@eu:1"]


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_invisible_characters_surrounding_spaces_and_long_names_are_refused(
    small_fleet: pd.DataFrame, name: str
) -> None:
    assert dc.server_name_problem(name)
    with pytest.raises(ValidationError) as info:
        dc.MetricRecord.model_validate({**SPEC_RECORD, "server_name": name})
    [error] = dc.describe_validation_errors(info.value)
    assert error["field"] == "server_name" and error["problem"]
    frame = small_fleet.copy()
    frame.loc[3, "server_name"] = name
    error = _only_error(frame)
    assert error.startswith("server_name: ") and "first at row(s) 3" in error


@pytest.mark.parametrize("name", GOOD_NAMES, ids=repr)
def test_printable_names_of_up_to_253_characters_are_accepted(
    small_fleet: pd.DataFrame, name: str
) -> None:
    assert dc.server_name_problem(name) is None
    assert dc.MetricRecord.model_validate({**SPEC_RECORD, "server_name": name}).server_name == name
    assert dc.validate_schema(small_fleet.assign(server_name=name)) == (True, [])


OUT_OF_RANGE = [
    "1999-12-31T23:59:59Z",
    "2000-01-01T00:30:00+01:00",  # 1999-12-31T23:30:00Z
    "1969-12-31T23:00:00Z",
    "0001-01-01T00:00:00+01:00",  # before year 1 in UTC: used to raise OverflowError
    "9999-12-31T23:59:59-01:00",  # after year 9999 in UTC: used to raise OverflowError
    "2200-01-01T00:00:00Z",
    0,
    -86400,
]


@pytest.mark.parametrize("stamp", OUT_OF_RANGE, ids=repr)
def test_timestamps_outside_the_contract_range_are_refused_by_name(stamp: object) -> None:
    with pytest.raises(ValidationError) as info:
        dc.MetricRecord.model_validate({**SPEC_RECORD, "timestamp": stamp})
    [error] = dc.describe_validation_errors(info.value)
    assert error["field"] == "timestamp"
    assert "2000-01-01T00:00:00Z" in error["problem"] and "2200-01-01T00:00:00Z" in error["problem"]


@pytest.mark.parametrize(
    "stamp", ["2000-01-01T00:00:00Z", "2000-01-01T01:00:00+01:00", "2199-12-31T23:59:59Z"]
)
def test_the_range_holds_its_floor_and_ends_before_its_ceiling(stamp: str) -> None:
    record = dc.MetricRecord.model_validate({**SPEC_RECORD, "timestamp": stamp})
    assert dc.TIMESTAMP_FLOOR <= record.timestamp < dc.TIMESTAMP_CEILING


def test_frames_refuse_timestamps_outside_the_range(small_fleet: pd.DataFrame) -> None:
    frame = small_fleet.copy()
    frame.loc[7, "timestamp"] = pd.Timestamp("1970-01-01T00:00:00Z")
    error = _only_error(frame)
    assert error.startswith("timestamp: ") and "first at row(s) 7" in error
    assert "2000-01-01T00:00:00Z" in error
    naive = small_fleet.assign(timestamp=small_fleet["timestamp"].dt.tz_localize(None))
    assert dc.validate_schema(naive) == (True, [])
    naive.loc[2, "timestamp"] = pd.Timestamp("2200-01-01")
    assert "first at row(s) 2" in _only_error(naive)


# --- states and time features ------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "state"),
    [
        ({"cpu_pct": 96, "mem_pct": 10}, "critical_issue"),
        ({"cpu_pct": 20, "mem_pct": 96}, "critical_issue"),
        ({"cpu_pct": 20, "mem_pct": 20, "anomaly_score": 0.8}, "critical_issue"),
        ({"cpu_pct": 85, "mem_pct": 20}, "heavy_load"),
        ({"cpu_pct": 2, "mem_pct": 5}, "idle"),
        ({"cpu_pct": 40, "mem_pct": 40, "hour": 10, "is_business_hours": True}, "morning_spike"),
        ({"cpu_pct": 40, "mem_pct": 40, "hour": 12, "is_business_hours": True}, "healthy"),
        ({"cpu_pct": 40, "mem_pct": 40}, "healthy"),
        ({"cpu_pct": 99, "mem_pct": 99, "offline": True}, "offline"),
        ({"cpu_pct": 99, "mem_pct": 99, "maintenance": True}, "maintenance"),
        ({"cpu_pct": 40, "mem_pct": 40, "recovering": True}, "recovery"),
        ({"cpu_pct": 97, "mem_pct": 40, "recovering": True}, "critical_issue"),
    ],
)
def test_determine_state(kwargs: dict, state: str) -> None:
    args = {"hour": 3, "is_business_hours": False, **kwargs}
    assert dc.determine_state(**args) == state


def test_determine_state_vectorised() -> None:
    states = dc.determine_state(
        np.array([96.0, 50.0, 1.0]), np.array([10.0, 50.0, 1.0]), np.array([1, 1, 1]), False
    )
    assert states.tolist() == ["critical_issue", "healthy", "idle"]
    assert set(states.tolist()) <= set(dc.VALID_STATES)


def test_time_features() -> None:
    stamps = pd.Series(pd.to_datetime(["2025-01-06 09:30", "2025-01-11 10:00", "2025-03-04 17:00"]))
    features = dc.time_features(stamps)
    assert list(features.columns) == list(dc.TIME_FEATURES)
    assert features["hour"].tolist() == [9, 10, 17]
    assert features["day_of_week"].tolist() == [0, 5, 1]
    assert features["month"].tolist() == [1, 1, 3]
    assert features["is_weekend"].tolist() == [0, 1, 0]
    assert features["is_business_hours"].tolist() == [1, 0, 0]


# --- server name encoding ---------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "server_id"),
    [
        ("ppml0001", "921211"),
        ("ppdb001", "215733"),
        ("ppweb001", "305220"),
        ("ppvra00a0018", "6509"),
        ("", "12610"),
    ],
)
def test_encode_server_name_pinned(name: str, server_id: str) -> None:
    assert dc.encode_server_name(name) == server_id


def test_mapping_round_trip() -> None:
    names = ["ppml0001", "ppdb001", "ppweb001", "ppml0001"]
    mapping = dc.create_server_mapping(names)
    assert set(mapping) == {"name_to_id", "id_to_name"}
    assert len(mapping["name_to_id"]) == 3
    for name in names:
        assert dc.decode_server_name(mapping["name_to_id"][name], mapping) == name
    assert dc.decode_server_name("42", mapping) == "UNKNOWN_42"


def test_mapping_collision_keeps_first_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    assert dc.encode_server_name("host81") == dc.encode_server_name("host433") == "944517"
    mapping = dc.create_server_mapping(["host81", "host433"])
    assert mapping["id_to_name"] == {"944517": "host433"}
    assert len(mapping["name_to_id"]) == 2
    assert "server id collision" in caplog.text


# --- aggregation rule ----------------------------------------------------------------


def test_aggregation_rule_covers_every_metric_once() -> None:
    assert set(dc.AGGREGATION) == set(dc.METRIC_COLUMNS)
    assert dc.MAX_COLUMNS == ("back_close_wait", "front_close_wait")
    assert dc.LAST_COLUMNS == ("uptime_days",)
    every = sorted([*dc.MEAN_INDEX, *dc.MAX_INDEX, *dc.LAST_INDEX])
    assert every == list(range(len(dc.METRIC_COLUMNS)))


def test_aggregate_ticks_means_gauges_maxes_counters_keeps_last_uptime() -> None:
    col = {c: i for i, c in enumerate(dc.METRIC_COLUMNS)}
    ticks = np.zeros((3, len(dc.METRIC_COLUMNS)))
    ticks[:, col["cpu_user_pct"]] = [10.0, 20.0, 60.0]
    ticks[:, col["back_close_wait"]] = [3, 9, 1]
    ticks[:, col["uptime_days"]] = [4, 4, 0]  # a restart within the step
    step = dc.aggregate_ticks(ticks)
    assert step.shape == (len(dc.METRIC_COLUMNS),)
    assert step[col["cpu_user_pct"]] == 30.0
    assert step[col["back_close_wait"]] == 9 and step[col["uptime_days"]] == 0
    many = dc.aggregate_ticks(np.stack([ticks, ticks[::-1]]))  # (steps, ticks, metrics)
    assert many.shape == (2, len(dc.METRIC_COLUMNS))
    np.testing.assert_array_equal(many[0], step)
    assert many[1, col["uptime_days"]] == 4 and many[1, col["back_close_wait"]] == 9
    with pytest.raises(ValueError):
        dc.aggregate_ticks(np.zeros((0, len(dc.METRIC_COLUMNS))))
