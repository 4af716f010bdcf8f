"""adapters.mapping: source documents -> /feed records, and what it refuses."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import orjson
import pandas as pd
import pytest

import data_contract as dc
from adapters.mapping import (
    Failure,
    Mapping,
    MappingError,
    Rule,
    derive_state,
    derive_states,
    format_time,
    get_path,
    map_documents,
    mapping_from_config,
    parse_time,
    to_record,
)
from contract_parse import parse_feed

UTC = timezone.utc
TUESDAY_14H = "2024-01-02T14:00:00Z"  # business hours, not the morning spike

METRICS = {
    "cpu_user_pct": 30.0,
    "cpu_sys_pct": 5.0,
    "cpu_iowait_pct": 1.0,
    "cpu_idle_pct": 64.0,
    "java_cpu_pct": 12.5,
    "mem_used_pct": 55.0,
    "swap_used_pct": 0.0,
    "disk_usage_pct": 40.0,
    "net_in_mb_s": 2.5,
    "net_out_mb_s": 1.25,
    "back_close_wait": 3,
    "front_close_wait": 0,
    "load_average": 1.75,
    "uptime_days": 42,
}


def contract_doc(**changes: object) -> dict:
    """A document already in the contract's shape, as a MongoDB collection might hold it."""
    doc = {"_id": "65a1", "timestamp": TUESDAY_14H, "server_name": "ppdb001", "state": "healthy"}
    return {**doc, **METRICS, **changes}


PASSTHROUGH = mapping_from_config(None)


# --- passthrough ----------------------------------------------------------------------


def test_passthrough_keeps_the_contract_fields_and_drops_the_rest() -> None:
    record = to_record(contract_doc(extra="x"), PASSTHROUGH)
    expected = {"timestamp": TUESDAY_14H, "server_name": "ppdb001", "state": "healthy", **METRICS}
    assert record == expected
    assert list(record) == list(dc.REQUIRED_COLUMNS)
    assert isinstance(record["back_close_wait"], int) and isinstance(record["cpu_user_pct"], float)


def test_records_are_what_the_daemon_feed_accepts() -> None:
    docs = [contract_doc(), contract_doc(state=None, timestamp=datetime(2024, 1, 2, 10, 0))]
    records, failures = map_documents(docs, PASSTHROUGH)
    assert failures == []
    batch = parse_feed(orjson.dumps(records))
    assert batch.names == ["ppdb001", "ppdb001"]
    assert batch.seconds.tolist() == [1704204000, 1704189600]


def test_passthrough_names_a_missing_metric() -> None:
    doc = contract_doc()
    del doc["load_average"]
    with pytest.raises(MappingError) as caught:
        to_record(doc, PASSTHROUGH)
    assert (caught.value.field, caught.value.problem) == ("load_average", "missing")
    assert str(caught.value) == "load_average: missing"


def test_a_non_document_is_a_mapping_error() -> None:
    with pytest.raises(MappingError, match=r"\(document\): must be an object, got list"):
        to_record([1, 2], PASSTHROUGH)  # type: ignore[arg-type]


# --- field mapping --------------------------------------------------------------------

METRICBEAT_LIKE = {
    "fields": {
        "cpu_user_pct": {"source": "system.cpu.user.norm.pct", "scale": 100},
        "cpu_idle_pct": {"source": "system.cpu.idle.norm.pct", "scale": 100},
        "mem_used_pct": {"source": "system.memory.actual.used.pct", "scale": 100},
        "load_average": "system.load.1",
        "uptime_days": {"source": "uptime_s", "scale": 1 / 86400},
    },
    "server_name": "host.name",
    "state": "status",
}


def nested_doc() -> dict:
    return {
        "@timestamp": "2024-01-02T14:00:05.250Z",
        "host": {"name": "web-1"},
        "system": {
            "cpu": {"user": {"norm": {"pct": 0.25}}, "idle": {"norm": {"pct": 0.7}}},
            "memory": {"actual": {"used": {"pct": 0.5}}},
            "load": {"1": 2.5},
        },
        "uptime_s": 3.9 * 86400,
    }


def test_field_mapping_resolves_nested_paths_scales_and_zero_fills() -> None:
    mapping = mapping_from_config(METRICBEAT_LIKE, time_field="@timestamp")
    record = to_record(nested_doc(), mapping)
    assert record["timestamp"] == "2024-01-02T14:00:05.250000Z"
    assert record["server_name"] == "web-1"
    assert record["cpu_user_pct"] == pytest.approx(25.0)
    assert record["cpu_idle_pct"] == pytest.approx(70.0)
    assert record["mem_used_pct"] == pytest.approx(50.0)
    assert record["load_average"] == 2.5
    assert record["uptime_days"] == 3  # a scaled integer column takes whole days
    unmapped = set(dc.METRIC_COLUMNS) - set(METRICBEAT_LIKE["fields"])
    assert {record[c] for c in unmapped} == {0}
    assert record["state"] == "healthy"  # no "status" in the document: derived


def test_literal_dotted_keys_and_mixed_nesting_are_found() -> None:
    assert get_path({"host.name": "a"}, "host.name") == "a"
    assert get_path({"system.cpu": {"user.pct": 0.5}}, "system.cpu.user.pct") == 0.5
    assert get_path({"system": {"cpu.user": {"pct": 1}}}, "system.cpu.user.pct") == 1
    assert get_path({"host": {"name": "nested"}, "host.name": "literal"}, "host.name") == "literal"
    assert get_path({"host": {"ip": "x"}}, "host.name") is None
    assert get_path({"host": "flat"}, "host.name") is None


def test_source_state_is_used_when_present() -> None:
    mapping = mapping_from_config(METRICBEAT_LIKE, time_field="@timestamp")
    doc = {**nested_doc(), "status": "maintenance"}
    assert to_record(doc, mapping)["state"] == "maintenance"


def test_mapped_source_missing_names_the_metric_and_its_source() -> None:
    mapping = mapping_from_config(METRICBEAT_LIKE, time_field="@timestamp")
    doc = nested_doc()
    del doc["system"]["load"]
    with pytest.raises(MappingError) as caught:
        to_record(doc, mapping)
    assert caught.value.field == "load_average"
    assert caught.value.problem == "missing (source system.load.1)"


def test_missing_server_name_names_its_source() -> None:
    mapping = mapping_from_config(METRICBEAT_LIKE, time_field="@timestamp")
    doc = nested_doc()
    del doc["host"]
    with pytest.raises(MappingError, match=r"^server_name: missing \(source host.name\)$"):
        to_record(doc, mapping)


# --- values the daemon would refuse -----------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field", "problem"),
    [
        ({"cpu_user_pct": "30"}, "cpu_user_pct", "not a number"),
        ({"cpu_user_pct": True}, "cpu_user_pct", "not a number"),
        ({"mem_used_pct": math.nan}, "mem_used_pct", "not a finite number"),
        ({"net_in_mb_s": math.inf}, "net_in_mb_s", "not a finite number"),
        ({"cpu_user_pct": 150.0}, "cpu_user_pct", "less than or equal to 100"),
        ({"net_out_mb_s": -0.5}, "net_out_mb_s", "greater than or equal to 0"),
        ({"uptime_days": 400}, "uptime_days", "less than or equal to 365"),
        ({"back_close_wait": 2.5}, "back_close_wait", "fractional part"),
        ({"state": "running"}, "state", "Input should be"),
        ({"server_name": "   "}, "server_name", "non-whitespace"),
        ({"server_name": 17}, "server_name", "valid string"),
        ({"timestamp": "yesterday"}, "timestamp", "not an ISO 8601 time"),
        ({"timestamp": None}, "timestamp", "missing"),
    ],
)
def test_values_the_contract_refuses_are_mapping_errors(
    changes: dict, field: str, problem: str
) -> None:
    with pytest.raises(MappingError) as caught:
        to_record(contract_doc(**changes), PASSTHROUGH)
    assert caught.value.field == field
    assert problem in caught.value.problem


def test_map_documents_returns_failures_in_order_and_never_raises() -> None:
    bad_cpu = contract_doc(cpu_user_pct=101.0)
    docs = [contract_doc(), "not a dict", bad_cpu, contract_doc(server_name="ppdb002", state=None)]
    records, failures = map_documents(docs, PASSTHROUGH)
    assert [r["server_name"] for r in records] == ["ppdb001", "ppdb002"]
    assert [(f.index, f.field) for f in failures] == [(1, "(document)"), (2, "cpu_user_pct")]
    assert failures[1].document is bad_cpu
    assert isinstance(failures[0], Failure)
    assert records[1]["state"] == "healthy"


@pytest.mark.parametrize("stamp", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:00:00-02:00"])
def test_a_time_out_of_range_in_utc_is_a_mapping_failure(stamp: str) -> None:
    """Year 0 or 10000 once in UTC: an OverflowError from datetime, once uncaught."""
    records, failures = map_documents([contract_doc(timestamp=stamp), contract_doc()], PASSTHROUGH)
    assert len(records) == 1 and [(f.index, f.field) for f in failures] == [(0, "timestamp")]
    assert "out of range in UTC" in failures[0].problem


class Exploding(dict):
    """A document whose lookups fail as no check foresaw (a stand-in for a bug)."""

    def __contains__(self, key: object) -> bool:
        raise RuntimeError("boom")


def test_an_unexpected_error_is_that_document_failure_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    records, failures = map_documents([Exploding(contract_doc()), contract_doc()], PASSTHROUGH)
    assert len(records) == 1 and [(f.index, f.field) for f in failures] == [(0, "(document)")]
    assert failures[0].problem == "unexpected RuntimeError: boom"
    [logged] = [r for r in caplog.records if "unexpected RuntimeError" in r.getMessage()]
    assert logged.levelname == "WARNING" and logged.exc_info is not None  # the traceback


def test_map_documents_of_nothing_is_nothing() -> None:
    assert map_documents([], PASSTHROUGH) == ([], [])


# --- state derivation -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("timestamp", "idle", "mem", "state"),
    [
        (TUESDAY_14H, 2.0, 50.0, "critical_issue"),  # CPU used 98
        (TUESDAY_14H, 60.0, 96.0, "critical_issue"),
        (TUESDAY_14H, 15.0, 50.0, "heavy_load"),  # CPU used 85
        (TUESDAY_14H, 60.0, 81.0, "heavy_load"),
        (TUESDAY_14H, 97.0, 8.0, "idle"),
        ("2024-01-02T10:30:00Z", 60.0, 50.0, "morning_spike"),  # Tuesday
        ("2024-01-06T10:30:00Z", 60.0, 50.0, "healthy"),  # Saturday
        (TUESDAY_14H, 60.0, 50.0, "healthy"),
    ],
)
def test_derive_state_is_the_spec_logic(
    timestamp: str, idle: float, mem: float, state: str
) -> None:
    record = {**contract_doc(timestamp=timestamp), "cpu_idle_pct": idle, "mem_used_pct": mem}
    assert derive_state(record) == state
    record["state"] = None
    assert to_record(record, PASSTHROUGH)["state"] == state


def test_derive_states_agrees_with_the_contract_function() -> None:
    stamps = [datetime(2024, 1, 1, tzinfo=UTC) + timedelta(hours=7 * i) for i in range(40)]
    records = [
        {"timestamp": t, "cpu_idle_pct": (13.0 * i) % 100, "mem_used_pct": (29.0 * i) % 100}
        for i, t in enumerate(stamps)
    ]
    feats = dc.time_features(pd.DatetimeIndex(stamps))
    expected = dc.determine_state(
        [100 - r["cpu_idle_pct"] for r in records],
        [r["mem_used_pct"] for r in records],
        feats["hour"],
        feats["is_business_hours"],
    )
    assert derive_states(records) == expected.tolist()
    assert len(set(expected.tolist())) >= 4  # the cases above cover several states


# --- time ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-01-02T14:00:00Z", datetime(2024, 1, 2, 14, tzinfo=UTC)),
        ("2024-01-02T14:00:00", datetime(2024, 1, 2, 14, tzinfo=UTC)),
        ("2024-01-02T16:00:00+02:00", datetime(2024, 1, 2, 14, tzinfo=UTC)),
        ("2024-01-02T09:30:00-0430", datetime(2024, 1, 2, 14, tzinfo=UTC)),
        ("2024-01-02 14:00:00.5Z", datetime(2024, 1, 2, 14, 0, 0, 500000, tzinfo=UTC)),
        ("2024-01-02T14:00:00.123456789Z", datetime(2024, 1, 2, 14, 0, 0, 123456, tzinfo=UTC)),
        (1704204000000, datetime(2024, 1, 2, 14, tzinfo=UTC)),
        (1704204000250.0, datetime(2024, 1, 2, 14, 0, 0, 250000, tzinfo=UTC)),
        (datetime(2024, 1, 2, 14), datetime(2024, 1, 2, 14, tzinfo=UTC)),
        (
            datetime(2024, 1, 2, 15, tzinfo=timezone(timedelta(hours=1))),
            datetime(2024, 1, 2, 14, tzinfo=UTC),
        ),
    ],
)
def test_parse_time_accepts_the_usual_forms(value: object, expected: datetime) -> None:
    parsed = parse_time(value)
    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "value", ["2024-01-02", "14:00:00", "2024-13-02T14:00:00Z", True, [], None]
)
def test_parse_time_refuses_what_is_not_a_time(value: object) -> None:
    with pytest.raises(MappingError) as caught:
        parse_time(value, "@timestamp")
    assert caught.value.field == "@timestamp"


def test_parse_time_refuses_epoch_milliseconds_out_of_range() -> None:
    with pytest.raises(MappingError, match="out of range"):
        parse_time(1e30)


def test_format_time_is_utc_with_a_z() -> None:
    assert format_time(datetime(2024, 1, 2, 15, tzinfo=timezone(timedelta(hours=1)))) == (
        "2024-01-02T14:00:00Z"
    )
    assert format_time(datetime(2024, 1, 2, 14, 0, 0, 1000)) == "2024-01-02T14:00:00.001000Z"


# --- configuration -----------------------------------------------------------------------


def test_config_none_is_passthrough() -> None:
    assert mapping_from_config(None) == Mapping()
    assert mapping_from_config({}) == Mapping()
    assert Mapping().rules()["cpu_user_pct"] == Rule("cpu_user_pct")


def test_config_is_parsed_into_rules() -> None:
    mapping = mapping_from_config(METRICBEAT_LIKE, time_field="@timestamp")
    assert mapping.fields is not None
    assert mapping.fields["load_average"] == Rule("system.load.1", 1.0)
    assert mapping.fields["mem_used_pct"] == Rule("system.memory.actual.used.pct", 100.0)
    assert (mapping.server_name, mapping.state, mapping.time_field) == (
        "host.name",
        "status",
        "@timestamp",
    )


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ([], "mapping: must be an object"),
        ({"field": {}}, "mapping.field: unknown key"),
        ({"fields": {"cpu_pct": "cpu"}}, "mapping.fields.cpu_pct: deprecated"),
        ({"fields": {"cpu_total": "cpu"}}, "mapping.fields.cpu_total: not a contract metric"),
        ({"fields": {"state": "status"}}, "mapping.fields.state: not a contract metric"),
        ({"fields": {}}, "mapping.fields: must be a non-empty object"),
        ({"fields": ["cpu_user_pct"]}, "mapping.fields: must be a non-empty object"),
        ({"fields": {"cpu_user_pct": 3}}, "mapping.fields.cpu_user_pct: must be a source path"),
        ({"fields": {"cpu_user_pct": ""}}, "mapping.fields.cpu_user_pct: must be a non-empty"),
        ({"fields": {"cpu_user_pct": {"src": "a"}}}, "mapping.fields.cpu_user_pct: must be"),
        ({"fields": {"cpu_user_pct": {"scale": 2}}}, "mapping.fields.cpu_user_pct.source"),
        ({"fields": {"cpu_user_pct": {"source": "a", "scale": 0}}}, "cpu_user_pct.scale"),
        ({"fields": {"cpu_user_pct": {"source": "a", "scale": -1}}}, "cpu_user_pct.scale"),
        ({"fields": {"cpu_user_pct": {"source": "a", "scale": "100"}}}, "cpu_user_pct.scale"),
        ({"fields": {"cpu_user_pct": {"source": "a", "scale": True}}}, "cpu_user_pct.scale"),
        ({"fields": {"cpu_user_pct": {"source": "a", "scale": math.inf}}}, "cpu_user_pct.scale"),
        ({"server_name": 5}, "mapping.server_name: must be a non-empty"),
        ({"state": None}, "mapping.state: must be a non-empty"),
    ],
)
def test_bad_configs_fail_naming_the_key(config: object, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        mapping_from_config(config)  # type: ignore[arg-type]


def test_bad_time_field_fails() -> None:
    with pytest.raises(ValueError, match="time_field"):
        mapping_from_config(None, time_field="")
