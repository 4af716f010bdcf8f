"""/feed records -> a validated, columnar Batch of the valid ones, and every problem.

The contract's parser, shared by the daemon's /feed (inference/service.py) and the
adapters (adapters/mapping.py checks the records it maps with it: what the daemon would
refuse is quarantined at the source, naming the same field and problem).

The contract's pydantic model (data_contract.MetricRecord) is the definition of a valid
record. Checking 1,000 records with it takes several milliseconds, so valid batches of
the usual shape go through a vectorised fast path first: JSON numbers of the right type
in range, known states, non-blank names and strict ISO 8601 timestamps. The fast path
only ever accepts a subset of what MetricRecord accepts, and produces the same values;
anything it is unsure about (strings holding numbers, unix timestamps, an invalid
record...) goes to MetricRecord, which accepts it or names each problem as
{index, field, problem}; the valid records of a body are kept (partial acceptance, as
OTLP's partial success and Elasticsearch's _bulk do).

The full check validates one record at a time (as fast as whole-body validation, and the
daemon's event loop gets the GIL between records), and identical invalid records once: a
body of 50,000 `{}` (a sender on an old schema) takes about 0.2 s, not 7 s. A record with
more than MAX_FIELDS fields is one problem, not one per unknown field.

Timestamps are resolved to the second (sub-second parts are dropped).

The problems of a body are bounded (Problems): a careless sender (one still on an old
schema) can send tens of thousands of records that each break many rules. The first
LISTED errors {index, field, problem} are listed, every one is counted per
(field, problem) (the answer's error_counts), and rejected counts the records. A problem
names the rule broken; the value that broke it is only shown in listed errors
(" (got 130.0)"), so that the same rule broken by many values is counted as one.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from itertools import chain
from operator import itemgetter
from typing import Any

import numpy as np
import orjson
from pydantic import TypeAdapter, ValidationError

import data_contract as dc

STATE_CODES: dict[str, int] = {state: i for i, state in enumerate(dc.VALID_STATES)}
MAX_FIELDS = 64  # a record with more fields is one problem (the contract has 17)
_KEYS = frozenset(dc.REQUIRED_COLUMNS)
_RECORDS = TypeAdapter(list[dc.MetricRecord])
_RECORD = TypeAdapter(dc.MetricRecord)
_FLOOR, _CEILING = int(dc.TIMESTAMP_FLOOR.timestamp()), int(dc.TIMESTAMP_CEILING.timestamp())
_ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?(Z|[+-]\d\d:\d\d)?")
_GET = itemgetter(*dc.REQUIRED_COLUMNS)  # timestamp, server_name, state, then the metrics
_LOW = np.array([m.low for m in dc.METRICS])
_HIGH = np.array([np.inf if m.high is None else m.high for m in dc.METRICS])
_INT_INDEX = [i for i, m in enumerate(dc.METRICS) if m.kind == "int"]


# --- the problems of a body, bounded -------------------------------------------------

LISTED = 100  # errors listed in a /feed answer (and groups in its error_counts)

# (field, problem, got): one problem of a record; got (e.g. " (got 130.0)") is shown in the
# listed error after the problem and is left out of the counts.
Found = tuple[str, str, str]


@dataclass
class Problems:
    """Errors of records in body order: the first `limit` listed (None: all), each
    counted per (field, problem); rejected counts the records added."""

    limit: int | None = LISTED
    errors: list[dict[str, Any]] = field(default_factory=list)
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    rejected: int = 0

    @property
    def listing(self) -> bool:
        """Whether another error would be listed (else its got need not be worked out)."""
        return self.limit is None or len(self.errors) < self.limit

    def add(self, index: int | None, found: list[Found]) -> None:
        """One rejected record's problems."""
        self.rejected += 1
        self.counts.update((name, problem) for name, problem, _ in found)
        room = len(found) if self.limit is None else max(self.limit - len(self.errors), 0)
        self.errors += [
            {"index": index, "field": name, "problem": problem + got}
            for name, problem, got in found[:room]
        ]

    def add_errors(self, errors: Iterable[dict[str, Any]]) -> None:
        """Records rejected with one error {index, field, problem} each."""
        for error in errors:
            self.add(error["index"], [(error["field"], error["problem"], "")])

    def counted(self) -> list[dict[str, Any]]:
        """error_counts: {field, problem, count}, the most frequent first (`limit` groups)."""
        return [
            {"field": name, "problem": problem, "count": count}
            for (name, problem), count in self.counts.most_common(self.limit)
        ]


def combine(parts: list[Problems], limit: int | None = LISTED) -> Problems:
    """The problems of several checks of one body (each holding its own first errors) as
    one: the first `limit` errors by record index, every count, every rejected record."""
    errors = sorted((e for p in parts for e in p.errors), key=_index)
    out = Problems(limit, errors[:limit], sum((p.counts for p in parts), Counter()))
    out.rejected = sum(p.rejected for p in parts)
    return out


def _index(error: dict[str, Any]) -> int:
    return -1 if error["index"] is None else error["index"]


# --- parsing ---------------------------------------------------------------------------


class FeedRejected(ValueError):
    """A /feed body that is not applied; errors are [{index, field, problem}]."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self.errors = errors
        first = errors[0] if errors else {}
        super().__init__(f"{len(errors)} problem(s), first: {first}")


class TooManyRecords(ValueError):
    """A /feed body with more records than the daemon takes in one (answered 413)."""

    def __init__(self, count: int, limit: int) -> None:
        super().__init__(
            f"the body holds {count} records, more than the {limit} the daemon takes in one "
            "(TFT_MAX_RECORDS_PER_BODY): send them in smaller batches"
        )


@dataclass(frozen=True)
class Batch:
    """n validated records as columns: names (n,), epoch seconds (n,) int64, state codes
    (n,) int8 (index into VALID_STATES), values (n, 14) float64 in METRIC_COLUMNS order;
    index (n,) each record's position in the request body (None: 0..n-1)."""

    names: list[str]
    seconds: np.ndarray
    states: np.ndarray
    values: np.ndarray
    index: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.names)

    def positions(self) -> np.ndarray:
        """Each record's position in the request body."""
        return np.arange(len(self)) if self.index is None else self.index

    def subset(self, keep: np.ndarray) -> Batch:
        """The records where keep (a boolean mask) is true, with their body positions."""
        names = [name for name, k in zip(self.names, keep.tolist(), strict=True) if k]
        return Batch(
            names, self.seconds[keep], self.states[keep], self.values[keep], self.positions()[keep]
        )


def parse_records(body: bytes) -> tuple[Batch, list[dict[str, Any]]]:
    """The valid records of a /feed body and every {index, field, problem} of the others
    (the adapters check their records with it). Raises FeedRejected only when the body
    itself is unusable (not a JSON array)."""
    batch, problems = check_records(load_records(body), listed=None)
    return batch, problems.errors


def load_records(body: bytes, max_records: int | None = None) -> list[Any]:
    """The body's JSON array (FeedRejected if it is none; TooManyRecords past max_records)."""
    try:
        records = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        problem = f"not JSON: {exc}"
        raise FeedRejected([{"index": None, "field": "(body)", "problem": problem}]) from None
    if not isinstance(records, list):
        problem = f"must be a JSON array of records, got {type(records).__name__}"
        raise FeedRejected([{"index": None, "field": "(body)", "problem": problem}])
    if max_records is not None and len(records) > max_records:
        raise TooManyRecords(len(records), max_records)
    return records


def check_records(records: list[Any], listed: int | None) -> tuple[Batch, Problems]:
    """The valid records as a Batch, and the problems of the others (the first `listed`
    errors listed, None: all of them)."""
    batch = fast_batch(records)
    if batch is not None:
        return batch, Problems(listed)
    problems, parsed, good = Problems(listed), [], []
    seen: dict[bytes, list[Found]] = {}  # the problems of each distinct invalid record
    for index, record in enumerate(records):
        checked = _check_record(record, seen, problems.listing)
        if isinstance(checked, dc.MetricRecord):
            parsed.append(checked)
            good.append(index)
        else:
            problems.add(index, checked)
    return _checked_batch(parsed, np.array(good, dtype=np.int64)), problems


def _check_record(record: Any, seen: dict[bytes, list[Found]], got: bool) -> Any:
    """The MetricRecord of one record, or its problems (with the values shown if got).
    The record is validated as JSON: the value the model sees is the one orjson read (an
    integer past 64 bits is a float then, and refused in an int column)."""
    if isinstance(record, dict) and len(record) > MAX_FIELDS:
        problem = f"has {len(record)} fields; a record has the contract's {len(_KEYS)}"
        return [("(record)", problem, "")]
    raw = orjson.dumps(record)
    if raw in seen:
        return seen[raw]
    try:
        return _RECORD.validate_json(raw)
    except ValidationError as exc:
        found = [(f, p, g) for _, f, p, g in dc.validation_problems(exc, inputs=got)]
    seen[raw] = found
    return found


def parse_feed(body: bytes) -> Batch:
    """Validate a whole /feed body; raise FeedRejected if any record is invalid."""
    batch, errors = parse_records(body)
    if errors:
        raise FeedRejected(errors)
    return batch


def _checked_batch(parsed: list[dc.MetricRecord], index: np.ndarray | None = None) -> Batch:
    """Columns of records MetricRecord has accepted (the exact path)."""
    values = np.array(
        [[getattr(r, c) for c in dc.METRIC_COLUMNS] for r in parsed], dtype=np.float64
    ).reshape(len(parsed), len(dc.METRIC_COLUMNS))
    return Batch(
        names=[r.server_name for r in parsed],
        seconds=np.array([_epoch(r.timestamp) for r in parsed], dtype=np.int64),
        states=np.array([STATE_CODES[r.state] for r in parsed], dtype=np.int8),
        values=values,
        index=index,
    )


def _epoch(moment: datetime) -> int:
    return int(moment.replace(microsecond=0).timestamp())


# --- the fast path: returns None whenever it is not sure -----------------------------


def fast_batch(records: list[Any]) -> Batch | None:
    """The Batch of records of the usual shape, all valid; None whenever it is not sure."""
    if set(map(type, records)) - {dict} or set(map(len, records)) - {len(_KEYS)}:
        return None
    try:
        rows = list(map(_GET, records))
    except KeyError:  # 17 keys, but not the contract's
        return None
    if not rows:
        return None
    stamps, names, states, *metrics = zip(*rows, strict=True)
    values = _fast_values(metrics)
    if values is None or not _names_ok(names) or set(map(type, states)) != {str}:
        return None
    if not set(states) <= STATE_CODES.keys():
        return None
    seconds = _fast_seconds(stamps)
    if seconds is None:
        return None
    codes = np.fromiter(map(STATE_CODES.__getitem__, states), dtype=np.int8, count=len(states))
    return Batch(names=list(names), seconds=seconds, states=codes, values=values)


def _names_ok(names: tuple[Any, ...]) -> bool:
    if set(map(type, names)) != {str}:
        return False
    return not any(map(dc.server_name_problem, set(names)))


def _fast_values(metrics: list[tuple[Any, ...]]) -> np.ndarray | None:
    """(n, 14) values if every one is a JSON number in range (integral in int columns)."""
    if set(map(type, chain.from_iterable(metrics))) - {int, float}:
        return None
    try:
        values = np.array(metrics, dtype=np.float64).T
    except OverflowError:
        return None
    ints = values[:, _INT_INDEX]
    if not (
        np.isfinite(values).all()
        and (values >= _LOW).all()
        and (values <= _HIGH).all()
        and (ints == np.floor(ints)).all()
    ):
        return None
    return values


def _fast_seconds(stamps: list[Any]) -> np.ndarray | None:
    """Epoch seconds of strict ISO 8601 strings (naive = UTC), each distinct one parsed once."""
    unique: dict[Any, int] = {}
    if set(map(type, stamps)) != {str}:  # (and containers cannot go in a set)
        return None
    for stamp in set(stamps):
        if not _ISO.fullmatch(stamp):
            return None
        try:
            moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        except ValueError:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        unique[stamp] = _epoch(moment)
        if not _FLOOR <= unique[stamp] < _CEILING:
            return None
    return np.array([unique[s] for s in stamps], dtype=np.int64)
