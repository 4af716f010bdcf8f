"""contract_parse: /feed body validation (the daemon's and the adapters'): the fast path
agrees with the contract's MetricRecord, and every problem is named as
{index, field, problem}."""

from __future__ import annotations

import copy

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import contract_parse as cp
import data_contract as dc
from contract_parse import FeedRejected, parse_feed

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
    exact = cp._checked_batch(cp._RECORDS.validate_json(body))
    got = parse_feed(body)
    assert got.names == exact.names
    np.testing.assert_array_equal(got.seconds, exact.seconds)
    np.testing.assert_array_equal(got.states, exact.states)
    np.testing.assert_array_equal(got.values, exact.values)
    assert got.seconds.tolist() == [1760702400, 1760702400]


def test_fast_path_takes_the_usual_shape_and_defers_the_rest() -> None:
    assert cp.fast_batch([record(), record(server_name="b")]) is not None
    for change in ACCEPTED_BY_THE_MODEL[1:4]:  # 42.0 for an int, offsets, fractions: fast
        assert cp.fast_batch([record(**change)]) is None, change
    assert cp.fast_batch([record(cpu_user_pct=True)]) is None  # bool is not a number


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
    batch, errors = cp.parse_records(body)
    assert batch.names == ["b"] and batch.positions().tolist() == [1]
    assert {(e["index"], e["field"]) for e in errors} == {
        (0, "front_close_wait"),
        (2, "cpu_user_pct"),
    }


# --- names, the timestamp range, bounded problems (issue 18) ----------------------------

BAD_NAMES = ["web\x00", "a\u200bb", " web", "web ", "web\u2028", "x" * 254]
OUT_OF_RANGE = ["1969-12-31T23:00:00Z", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"]


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_the_fast_path_defers_bad_names_and_the_model_names_them(name: str) -> None:
    records = [record(), record(server_name=name)]
    assert cp.fast_batch(records) is None
    batch, errors = cp.parse_records(orjson.dumps(records))
    assert batch.names == ["ppml0001"]
    assert [(e["index"], e["field"]) for e in errors] == [(1, "server_name")]


@settings(max_examples=200, derandomize=True, deadline=None, database=None)
@given(st.text(max_size=260))
def test_the_fast_path_takes_exactly_the_names_the_contract_accepts(name: str) -> None:
    taken = cp.fast_batch([record(server_name=name)]) is not None
    assert taken == (dc.server_name_problem(name) is None)


@pytest.mark.parametrize("name", ["wéb 01", "a,b", "x" * 253])
def test_the_fast_path_takes_printable_names(name: str) -> None:
    assert cp.fast_batch([record(server_name=name)]).names == [name]


@pytest.mark.parametrize("stamp", OUT_OF_RANGE)
def test_timestamps_outside_the_contract_range_are_named_not_applied(stamp: str) -> None:
    """0001-01-01T00:00:00+01:00 was taken by the fast path (a stale tick), 1969 applied to a
    new server; the model raised OverflowError (a 500) on both ends."""
    records = [record(), record(timestamp=stamp)]
    assert cp.fast_batch(records[1:]) is None
    batch, errors = cp.parse_records(orjson.dumps(records))
    assert len(batch) == 1 and [(e["index"], e["field"]) for e in errors] == [(1, "timestamp")]


def test_problems_are_listed_up_to_the_limit_and_all_counted() -> None:
    records = [record(), *([{}] * 3000), record(cpu_user_pct=120.0)]
    batch, problems = cp.check_records(records, listed=100)
    assert len(batch) == 1 and problems.rejected == 3001
    assert len(problems.errors) == 100
    assert {e["index"] for e in problems.errors} == set(range(1, 7))  # 17 each, in order
    counts = {(c["field"], c["problem"]): c["count"] for c in problems.counted()}
    assert counts[("timestamp", "required field missing")] == 3000
    assert counts[("cpu_user_pct", "Input should be less than or equal to 100")] == 1
    assert sum(counts.values()) == 17 * 3000 + 1


def test_parse_records_still_lists_every_problem() -> None:
    """The adapters check their records with it, and quarantine each one by its error."""
    _, errors = cp.parse_records(orjson.dumps([{}] * 200))
    assert len(errors) == 17 * 200 and {e["index"] for e in errors} == set(range(200))


def test_a_record_with_very_many_fields_is_one_problem() -> None:
    crowded = {f"k{i}": 0 for i in range(5000)}
    _, errors = cp.parse_records(orjson.dumps([record(), crowded]))
    assert [(e["index"], e["field"]) for e in errors] == [(1, "(record)")]
    assert "5000 fields" in errors[0]["problem"]


def test_a_body_past_the_record_limit_is_refused_before_checking() -> None:
    with pytest.raises(cp.TooManyRecords) as caught:
        cp.load_records(orjson.dumps([{}] * 11), max_records=10)
    assert "11 records" in str(caught.value) and "TFT_MAX_RECORDS_PER_BODY" in str(caught.value)
    assert len(cp.load_records(orjson.dumps([{}] * 10), max_records=10)) == 10
