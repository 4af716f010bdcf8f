"""/feed body validation: the fast path agrees with the contract's MetricRecord, and every
problem is named as {index, field, problem}."""

from __future__ import annotations

import copy

import numpy as np
import orjson
import pytest

import data_contract as dc
from inference import ingest
from inference.ingest import FeedRejected, parse_feed

# The spec's /feed example (ARCHITECTURE_GUIDE section 2), verbatim.
SPEC_EXAMPLE = b"""[
  {
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
    "uptime_days": 42.0
  }
]"""


def record(**changes: object) -> dict:
    base = orjson.loads(SPEC_EXAMPLE)[0]
    base["uptime_days"] = 42
    base.update(changes)
    return base


def test_spec_example_is_accepted_verbatim() -> None:
    batch = parse_feed(SPEC_EXAMPLE)
    assert batch.names == ["ppml0001"]
    assert batch.seconds.tolist() == [1760702400]  # 2025-10-17T12:00:00Z
    assert dc.VALID_STATES[batch.states[0]] == "healthy"
    assert batch.values[0, dc.METRIC_COLUMNS.index("load_average")] == 8.5
    assert batch.values[0, dc.METRIC_COLUMNS.index("uptime_days")] == 42


# Variants the fast path must hand to MetricRecord (which accepts them) with equal results.
ACCEPTED_BY_THE_MODEL = [
    {"uptime_days": 42.0},  # an integral float for an int column
    {"cpu_user_pct": "65.4"},  # a number in a string
    {"timestamp": 1760702400},  # unix seconds
    {"timestamp": "2025-10-17 12:00:00"},  # space separator, naive = UTC
    {"timestamp": "2025-10-17T14:00:00+02:00"},  # an offset
    {"timestamp": "2025-10-17T12:00:00.750Z"},  # sub-second: dropped
]


@pytest.mark.parametrize("change", ACCEPTED_BY_THE_MODEL, ids=lambda c: repr(c))
def test_fast_and_exact_paths_agree(change: dict) -> None:
    records = [record(), record(server_name="other", **change)]
    body = orjson.dumps(records)
    exact = ingest._checked_batch(ingest._RECORDS.validate_json(body))
    got = parse_feed(body)
    assert got.names == exact.names
    np.testing.assert_array_equal(got.seconds, exact.seconds)
    np.testing.assert_array_equal(got.states, exact.states)
    np.testing.assert_array_equal(got.values, exact.values)
    assert got.seconds.tolist() == [1760702400, 1760702400]


def test_fast_path_takes_the_usual_shape_and_defers_the_rest() -> None:
    assert ingest._fast_batch([record(), record(server_name="b")]) is not None
    for change in ACCEPTED_BY_THE_MODEL[1:4]:  # 42.0 for an int, offsets, fractions: fast
        assert ingest._fast_batch([record(**change)]) is None, change
    assert ingest._fast_batch([record(cpu_user_pct=True)]) is None  # bool is not a number


BAD = [
    ({"cpu_user_pct": 120.0}, "cpu_user_pct", "less than or equal to 100"),
    ({"net_in_mb_s": -1.0}, "net_in_mb_s", "greater than or equal to 0"),
    ({"back_close_wait": 1.5}, "back_close_wait", "integer"),
    ({"state": "on_fire"}, "state", "on_fire"),
    ({"server_name": "   "}, "server_name", "non-whitespace"),
    ({"server_name": ""}, "server_name", "must not be empty"),
    ({"timestamp": "yesterday"}, "timestamp", "datetime"),
    ({"uptime_days": 400}, "uptime_days", "less than or equal to 365"),
    ({"cpu_pct": 5.0}, "cpu_pct", "deprecated field, replaced by cpu_user_pct"),
    ({"colour": "red"}, "colour", "unknown field"),
]


@pytest.mark.parametrize(("change", "field", "problem"), BAD, ids=[b[1] for b in BAD])
def test_bad_records_are_named(change: dict, field: str, problem: str) -> None:
    records = [record(), record(server_name="b"), record(**{"server_name": "c", **change})]
    with pytest.raises(FeedRejected) as caught:
        parse_feed(orjson.dumps(records))
    errors = caught.value.errors
    assert [(e["index"], e["field"]) for e in errors] == [(2, field)]
    assert problem in errors[0]["problem"]


def test_missing_fields_and_every_bad_record_are_listed() -> None:
    broken = record()
    del broken["mem_used_pct"]
    records = [broken, record(), record(swap_used_pct=-3.0)]
    with pytest.raises(FeedRejected) as caught:
        parse_feed(orjson.dumps(records))
    found = {(e["index"], e["field"], e["problem"]) for e in caught.value.errors}
    assert (0, "mem_used_pct", "required field missing") in found
    assert any(i == 2 and f == "swap_used_pct" for i, f, _ in found)


@pytest.mark.parametrize(
    ("body", "problem"),
    [(b"{not json", "not JSON"), (b'{"a": 1}', "JSON array"), (b"[1]", "should be an object")],
)
def test_bodies_that_are_not_a_list_of_records(body: bytes, problem: str) -> None:
    with pytest.raises(FeedRejected) as caught:
        parse_feed(body)
    assert problem in caught.value.errors[0]["problem"]


def test_an_empty_list_is_a_valid_empty_batch() -> None:
    assert len(parse_feed(b"[]")) == 0


def test_rejection_does_not_mutate_the_input() -> None:
    records = [record(), record(cpu_user_pct=-1.0)]
    before = copy.deepcopy(records)
    with pytest.raises(FeedRejected):
        parse_feed(orjson.dumps(records))
    assert records == before


def test_an_integer_past_64_bits_is_rejected_by_name_and_the_rest_kept() -> None:
    """orjson reads 2**64 as a float: the second validation of the valid records must
    not turn it into a crash (found by the fuzz tests)."""
    body = orjson.dumps([record(), record(server_name="b"), record(cpu_user_pct=200.0)])
    body = body.replace(b'"front_close_wait":0', b'"front_close_wait":18446744073709551616', 1)
    batch, errors = ingest.parse_records(body)
    assert batch.names == ["b"] and batch.positions().tolist() == [1]
    assert {(e["index"], e["field"]) for e in errors} == {
        (0, "front_close_wait"),
        (2, "cpu_user_pct"),
    }
