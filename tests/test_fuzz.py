"""Fuzzing the daemon's HTTP API in-process: schemathesis from app.openapi(), and
hypothesis-generated /feed bodies, through the ASGI app (the labelled baseline as the
forecaster, no state directory, no background worker).

Goals: zero 5xx and zero crashes on every endpoint, with a key, without one and with a
wrong one; every /feed answer follows the contract (200 with status "ok" or "partial",
or 422 with status "rejected" only when nothing was applied; counts that add up; an
{index, field, problem} for each rejected record, naming the broken field).
"""

from __future__ import annotations

import string
import warnings
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from functools import partial
from typing import Any

import httpx
import orjson
import pytest
import schemathesis
from anyio.from_thread import BlockingPortal, start_blocking_portal
from fastapi import FastAPI
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

import data_contract as dc
from inference.app import create_app
from inference.forecast import SeasonalNaiveForecaster
from inference.settings import DaemonSettings
from tests.daemon_helpers import AUTH, KEY, ROOT, make_record, running
from tests.test_contract_properties import (
    EARLIEST,
    broken,
    mutations,
    timestamps,
    valid_records,
)

# /health answers GET and POST with one function; FastAPI warns that the two share an
# operation id (reported to the lead). The schema is still complete.
pytestmark = pytest.mark.filterwarnings("ignore:Duplicate Operation ID:UserWarning")

FEED_KEYS = {"status", "received", "applied", "duplicates", "stale", "rejected", "errors"}
FEED_KEYS |= {"error_counts"}
LISTED = 100  # errors listed in an answer; error_counts counts them all
COUNTS = ("applied", "duplicates", "stale", "rejected")
OPEN = {"/health"}  # answered without a key
# A few names, so that the fuzzed daemon's buffers stay small across examples.
SERVERS = st.sampled_from([f"fuzz{i:02d}" for i in range(12)])
FUZZ = settings(
    max_examples=60,
    derandomize=True,  # the same examples every run: make test must be repeatable
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def fuzz_app() -> FastAPI:
    """The production app (no /docs) around a fast forecaster; reloading names a model
    that does not exist, so a fuzzed reload is answered (422) without loading torch."""
    settings_ = DaemonSettings(
        _env_file=None,
        api_key=KEY,
        state_dir=None,
        forecast_worker=False,
        models_dir=ROOT / "models",
        model=ROOT / "models" / "absent-fuzz-model",
    )
    return create_app(settings_, model=SeasonalNaiveForecaster())


# --- the /feed contract ----------------------------------------------------------------


def check_feed_answer(code: int, answer: dict[str, Any], sent: Any) -> None:
    """Any /feed answer to an authenticated body ``sent`` (parsed JSON, or raw bytes)."""
    assert code in (200, 422), (code, answer)
    assert FEED_KEYS <= answer.keys(), answer
    assert all(isinstance(answer[k], int) and answer[k] >= 0 for k in ("received", *COUNTS))
    if code == 422:
        assert answer["status"] == "rejected" and answer["applied"] == 0, answer
    else:
        assert answer["status"] == ("partial" if answer["rejected"] else "ok"), answer
    assert answer["received"] == sum(answer[k] for k in COUNTS), answer
    indices = check_errors(answer["errors"], sent)
    check_counts(answer)
    if isinstance(sent, list):
        assert answer["received"] == len(sent), answer
        assert len(indices) <= answer["rejected"], answer
        if len(answer["errors"]) < LISTED:  # else the first LISTED errors are listed
            assert len(indices) == answer["rejected"], answer
    else:
        assert code == 422 and answer["errors"], answer


def check_counts(answer: dict[str, Any]) -> None:
    """error_counts: {field, problem, count} groups, at least as many errors as listed."""
    counts = answer["error_counts"]
    assert isinstance(counts, list) and len(counts) <= LISTED, counts
    assert all({"field", "problem", "count"} <= c.keys() and c["count"] > 0 for c in counts)
    assert len(answer["errors"]) <= LISTED
    if len(counts) < LISTED:
        assert sum(c["count"] for c in counts) >= len(answer["errors"]), answer
        assert {e["field"] for e in answer["errors"]} <= {c["field"] for c in counts}, answer


def check_errors(errors: Any, sent: Any) -> set[int]:
    """Each error is {index, field, problem} and names a field of its record; returns the
    indices of the rejected records."""
    assert isinstance(errors, list)
    indices = set()
    for error in errors:
        assert {"index", "field", "problem"} <= error.keys(), error
        field, index = error["field"], error["index"]
        assert isinstance(field, str) and isinstance(error["problem"], str), error
        assert error["problem"], error
        if index is None:
            assert field == "(body)", error  # the body itself: not JSON, not an array
            continue
        assert isinstance(sent, list) and 0 <= index < len(sent), error
        indices.add(index)
        record = sent[index]
        if isinstance(record, dict):  # a contract field, or the record's own unknown key
            assert field in dc.REQUIRED_COLUMNS or field in record or _empty(field, record), error
        else:
            assert field == "(record)", error
    return indices


def _empty(field: str, record: dict[str, Any]) -> bool:
    """An empty key may be shown quoted."""
    return field == '""' and "" in record


def answer_json(response: Any) -> dict[str, Any]:
    body = response.json()
    assert isinstance(body, dict), body
    return body


# --- schemathesis: every operation of app.openapi() ------------------------------------


def load_schema() -> schemathesis.BaseSchema:
    """The schema the app declares, run against the app itself (its lifespan started by
    schemathesis' ASGI client on the first call). Built at import: schemathesis makes one
    test per operation when the module is collected (its lazy fixture loader does not
    work with this pytest)."""
    app = fuzz_app()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Duplicate Operation ID", UserWarning)
        raw = app.openapi()
    loaded = schemathesis.openapi.from_dict(raw)
    loaded.app = app  # the ASGI transport: calls go to the app in-process
    return loaded


schema = load_schema()


def feed_contract(ctx: Any, response: Any, case: Any) -> bool | None:
    """schemathesis check: an authenticated /feed answer follows the contract."""
    if case.path != "/feed" or case.method.upper() != "POST" or response.status_code in (401, 403):
        return None
    sent = case.body if isinstance(case.body, list | dict | str | int | float) else None
    check_feed_answer(response.status_code, answer_json(response), sent)
    return True


def test_the_schema_declares_every_endpoint_and_the_feed_body() -> None:
    operations = [result.ok() for result in schema.get_all_operations()]
    declared = {(op.method.upper(), op.path) for op in operations}
    assert {("POST", "/feed"), ("GET", "/predict"), ("GET", "/alerts")} <= declared
    assert {("GET", "/health"), ("POST", "/admin/reload-model")} <= declared
    body = schema.raw_schema["paths"]["/feed"]["post"].get("requestBody", {})
    feed = body.get("content", {}).get("application/json", {}).get("schema", {})
    assert feed.get("type") == "array", "the /feed body (an array of records) is not declared"


# negative_data_rejection is not among the checks: the daemon deliberately accepts more
# than the declared JSON schema (numbers in strings, unix timestamps: see ingest.py).
@schema.parametrize()
@FUZZ
def test_with_the_key_no_5xx_and_feed_answers_follow_the_contract(case: Any) -> None:
    response = case.call(headers=AUTH)
    case.validate_response(
        response,
        checks=[not_a_server_error, feed_contract],
        headers=AUTH,
    )
    assert response.status_code not in (401, 403)


def expected_status(case: Any, refused: int) -> int:
    """Unauthenticated: 405 for a method the path does not have (routing comes first),
    200 on the open /health, else refused (401 without a key, 403 with a wrong one)."""
    methods = schema.raw_schema["paths"].get(case.path, {})
    if case.method.lower() not in methods:
        return 405
    return 200 if case.path in OPEN else refused


@schema.parametrize()
@settings(FUZZ, max_examples=15)
def test_without_a_key_everything_but_health_is_401(case: Any) -> None:
    response = case.call()
    case.validate_response(response, checks=[not_a_server_error])
    assert response.status_code == expected_status(case, 401), response.text


@schema.parametrize()
@settings(FUZZ, max_examples=15)
def test_with_a_wrong_key_everything_but_health_is_403(case: Any) -> None:
    wrong = {"X-API-Key": "not-" + KEY}
    response = case.call(headers=wrong)
    case.validate_response(response, checks=[not_a_server_error], headers=wrong)
    assert response.status_code == expected_status(case, 403), response.text


# --- hypothesis-generated /feed bodies, posted directly -----------------------------------


class Client:
    """Blocking calls into the in-process app (httpx over ASGI, on a portal's event loop),
    so that hypothesis drives it from plain test functions."""

    def __init__(self, portal: BlockingPortal, client: httpx.AsyncClient) -> None:
        self.portal, self.client = portal, client

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.portal.call(partial(self.client.get, url, **kwargs))

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.portal.call(partial(self.client.post, url, **kwargs))


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(running(fuzz_app())) as async_client,
    ):
        yield Client(portal, async_client)


def past() -> st.SearchStrategy[datetime]:
    """Timestamps the daemon's clock-skew check accepts (offsets included)."""
    return timestamps(EARLIEST, datetime.now() - timedelta(days=1))


@st.composite
def mixed_batches(draw: st.DrawFn) -> tuple[list[Any], dict[int, str]]:
    """A body of valid records, some broken in one field: (records, {index: field})."""
    records = draw(st.lists(valid_records(names=SERVERS, stamps=past()), max_size=12))
    expected = {}
    for i in draw(st.sets(st.integers(0, max(len(records) - 1, 0)), max_size=len(records))):
        field, value = draw(mutations())
        records[i], expected[i] = broken(records[i], field, value), field
    return records, expected


@FUZZ
@given(mixed_batches())
def test_feed_keeps_valid_records_and_names_each_broken_field(
    client: Client, batch: tuple[list[Any], dict[int, str]]
) -> None:
    records, expected = batch
    response = client.post("/feed", content=orjson.dumps(records), headers=AUTH)
    answer = answer_json(response)
    check_feed_answer(response.status_code, answer, records)
    assert {(e["index"], e["field"]) for e in answer["errors"]} == set(expected.items())
    valid = len(records) - len(expected)
    assert answer["applied"] + answer["duplicates"] + answer["stale"] == valid
    if expected and not valid:
        assert response.status_code == 422  # nothing could be applied


def json_values() -> st.SearchStrategy[Any]:
    """Any JSON: scalars (huge and tiny numbers too), arrays and objects, nested."""
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(-(2**70), 2**70)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=20)
    )
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
        max_leaves=20,
    )


def record_shaped() -> st.SearchStrategy[dict[str, Any]]:
    """Objects with the contract's keys (some) holding any JSON value."""
    keys = st.sampled_from([*dc.REQUIRED_COLUMNS, *dc.DEPRECATED_COLUMNS, "extra"])
    return st.dictionaries(keys, json_values(), max_size=len(dc.REQUIRED_COLUMNS) + 2)


def raw_bodies() -> st.SearchStrategy[bytes]:
    """Bytes that are rarely a valid body: garbage, JSON of any shape, numbers JSON cannot
    hold, record-shaped objects, deep nesting."""
    garbage = st.binary(max_size=200)
    anything = json_values().map(_dumps)
    records = st.lists(record_shaped() | json_values(), max_size=6).map(_dumps)
    special = st.sampled_from(
        [b"", b"[", b"[]", b"{}", b"null", b"[NaN]", b"[1e999]", b"[" * 5000, b"\xff\xfe"]
    )
    text = st.text(string.printable, max_size=100).map(str.encode)
    return garbage | anything | records | special | text


def _dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:  # an integer beyond 64 bits: write it as Python would
        return repr(value).encode()


@FUZZ
@given(raw_bodies())
def test_feed_answers_any_body_without_a_server_error(client: Client, body: bytes) -> None:
    response = client.post("/feed", content=body, headers=AUTH)
    try:
        sent: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        sent = body
    check_feed_answer(response.status_code, answer_json(response), sent)


@pytest.mark.parametrize(("field", "value"), [("timestamp", []), ("state", {}), ("state", [1])])
def test_unhashable_values_are_rejected_by_name_not_a_crash(
    client: Client, field: str, value: Any
) -> None:
    """Found by the fuzzing: a JSON array or object as a timestamp or state broke the fast
    path (set() of unhashable values: TypeError, a 500)."""
    good = valid_record_now()
    records = [good, {**good, "server_name": "fuzz99", field: value}]
    response = client.post("/feed", content=orjson.dumps(records), headers=AUTH)
    answer = answer_json(response)
    check_feed_answer(response.status_code, answer, records)
    assert [(e["index"], e["field"]) for e in answer["errors"]] == [(1, field)]


def valid_record_now() -> dict[str, Any]:
    """One valid record an hour ago."""
    stamp = (datetime.now(timezone.utc) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {**make_record("fuzz00", 0), "timestamp": stamp}


def any_timestamps() -> st.SearchStrategy[Any]:
    """Timestamps of any year and offset (ISO 8601), unix numbers of any size, words."""
    minutes = st.integers(-(24 * 60 - 1), 24 * 60 - 1)
    offsets = minutes.map(lambda m: timezone(timedelta(minutes=m)))
    moments = st.datetimes(timezones=st.none() | st.just(timezone.utc) | offsets)
    numbers = st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    return moments.map(datetime.isoformat) | numbers | st.text(max_size=30)


@FUZZ
@example(stamp="9999-12-31T23:59:59-01:00", name="fuzz01")
@example(stamp="0001-01-01T00:00:00+01:00", name="fuzz01")
@example(stamp="1969-12-31T23:59:59Z", name="fuzz01")
@example(stamp="2025-06-15T12:00:00Z", name="fuzz01\x00")
@given(stamp=any_timestamps(), name=st.text(max_size=300) | SERVERS)
def test_any_timestamp_or_name_is_answered_without_a_server_error(
    client: Client, stamp: Any, name: str
) -> None:
    """A 5xx makes a sender retry forever: a bad record must be named, never a 500 (issue 18:
    year 9999 at -01:00 overflowed the clock-skew message, year 1 at +01:00 the model)."""
    odd = {**valid_record_now(), "timestamp": stamp, "server_name": name}
    bodies = [[odd], [valid_record_now(), odd], [valid_record_now(), {**odd, "cpu_user_pct": "5"}]]
    for records in bodies:
        response = client.post("/feed", content=orjson.dumps(records), headers=AUTH)
        answer = answer_json(response)
        check_feed_answer(response.status_code, answer, records)
        assert {e["field"] for e in answer["errors"]} <= {"timestamp", "server_name"}, answer


def test_an_empty_key_is_named_too(client: Client) -> None:
    """Found by the fuzzing: an unknown key "" was reported as field "(record)"."""
    records = [{"": 1}]
    response = client.post("/feed", content=orjson.dumps(records), headers=AUTH)
    answer = answer_json(response)
    assert response.status_code == 422
    named = {e["field"] for e in answer["errors"] if e["problem"] == "unknown field"}
    assert named & {"", '""'}, answer["errors"]
    check_feed_answer(response.status_code, answer, records)


def test_the_fuzzed_daemon_is_still_healthy(client: Client) -> None:
    """After the fuzzing, the app still serves every endpoint."""
    assert client.get("/health").status_code == 200
    predict = client.get("/predict", headers=AUTH)
    assert predict.status_code == 200 and "predictions" in predict.json()
    assert client.get("/alerts", headers=AUTH).status_code == 200
