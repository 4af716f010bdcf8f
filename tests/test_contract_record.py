"""One record (contract/record.py, through data_contract): the pydantic model of /feed's
records and the description of its errors."""

from __future__ import annotations

import pandas as pd
import pytest
from pydantic import TypeAdapter, ValidationError

import data_contract as dc
from tests.contract_helpers import SPEC_RECORD

BATCH = TypeAdapter(list[dc.MetricRecord])


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
