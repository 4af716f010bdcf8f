"""Pure Elasticsearch query matching for the protocol fake: dates, field paths, query DSL.

Queries compile against a `FieldView` (one index) into predicates over document positions;
`None` stands for "matches everything". Field values are kept per position as comparable
keys: dates as epoch milliseconds (like a `date` field: sub-millisecond digits truncated),
numbers as numbers, everything else as keyword strings (exact match, never analysed).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any, Protocol

Predicate = Callable[[int], bool]
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MS = timedelta(milliseconds=1)
_DATE_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2})(?::(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?)?"
    r"(Z|z|[+-]\d{2}(?::?\d{2})?)?"
)
_TYPES = {
    "date": "date",
    "date_nanos": "date",
    "boolean": "boolean",
    **dict.fromkeys(
        ("long", "integer", "short", "byte", "double", "float", "half_float", "scaled_float"),
        "number",
    ),
}


class EsError(Exception):
    """An error that becomes an Elasticsearch-shaped error response."""

    def __init__(self, status: int, kind: str, reason: str, **extra: Any) -> None:
        super().__init__(reason)
        self.status, self.kind, self.reason, self.extra = status, kind, reason, extra

    def body(self) -> dict[str, Any]:
        """The response body real Elasticsearch sends for this error."""
        cause = {"type": self.kind, "reason": self.reason, **self.extra}
        return {"error": {"root_cause": [cause], **cause}, "status": self.status}


class FieldView(Protocol):
    """What a query needs from one index: typed per-position keys of a field."""

    def keys(self, field: str) -> list[Any]: ...

    def field_type(self, field: str) -> str: ...


def mapping_type(es_type: str) -> str:
    """Collapse an Elasticsearch mapping type into date, number, boolean or keyword."""
    return _TYPES.get(es_type, "keyword")


def infer_type(value: Any) -> str:
    """Dynamic mapping of a first-seen value (ISO strings become dates, like ES)."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return "date" if isinstance(value, str) and _DATE_RE.fullmatch(value) else "keyword"


@lru_cache(maxsize=1 << 16)
def _parse_iso_millis(text: str) -> int:
    match = _DATE_RE.fullmatch(text)
    if match is None:
        raise ValueError(text)
    year, month, day, hour, minute, second, frac, zone = match.groups()
    moment = datetime(
        int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0),
        int((frac or "0")[:6].ljust(6, "0")), tzinfo=timezone.utc,
    )  # fmt: skip
    if zone and zone not in "Zz":
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "").ljust(4, "0")
        moment -= sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return (moment - EPOCH) // _MS


def to_millis(value: Any) -> int:
    """Epoch milliseconds from epoch millis (number or digit string) or an ISO-8601 string."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"not a date: {value!r}")
    if isinstance(value, str):
        stripped = value.lstrip("-")
        if stripped.isdigit():
            return int(value)
        return _parse_iso_millis(value)
    return int(value)


@lru_cache(maxsize=1 << 16)
def format_millis(ms: int) -> str:
    """strict_date_optional_time(_nanos) output for a `date` field: 2026-12-01T00:00:00.000Z."""
    moment = EPOCH + ms * _MS
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z"


def to_key(ftype: str, value: Any) -> Any:
    """The comparable key of one source value under a field type; None when it does not fit."""
    try:
        if ftype == "date":
            return to_millis(value)
        if ftype == "number":
            return value if type(value) in (int, float) else float(value)
    except (TypeError, ValueError):
        return None
    if ftype == "boolean":
        return value if isinstance(value, bool) else str(value) == "true"
    if isinstance(value, str):
        return value
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def query_key(ftype: str, value: Any, clause: str) -> Any:
    """A query-side value (range bound, term) as a key; a bad one is a 400 like in ES."""
    if ftype == "number" and isinstance(value, str) and not _is_number(value):
        ftype = "date"  # an ISO bound against epoch-millis numbers
    key = to_key(ftype, value)
    if key is None:
        raise EsError(400, "parse_exception", f"failed to parse [{value}] in [{clause}]")
    return key


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def compile_query(query: Any, view: FieldView) -> Predicate | None:
    """A predicate over positions for an ES query; None for match_all."""
    if query is None:
        return None
    if not isinstance(query, dict) or len(query) != 1:
        raise EsError(400, "parsing_exception", "[query] malformed: expected one query clause")
    ((kind, body),) = query.items()
    builder = _BUILDERS.get(kind)
    if builder is None:
        raise EsError(400, "parsing_exception", f"unknown query [{kind}]", line=1, col=1)
    return builder(body, view)


def _field_body(body: Any, clause: str) -> tuple[str, Any]:
    items = [(k, v) for k, v in (body or {}).items() if k not in ("boost", "_name")]
    if len(items) != 1:
        raise EsError(400, "parsing_exception", f"[{clause}] query expects exactly one field")
    return items[0]


def _any(keys: list[Any], test: Callable[[Any], bool]) -> Predicate:
    def predicate(pos: int) -> bool:
        value = keys[pos]
        if value is None:
            return False
        if type(value) is list:
            return any(test(item) for item in value)
        return test(value)

    return predicate


def range_bounds(body: Any, view: FieldView) -> tuple[str, Any, bool, Any, bool]:
    """(field, low, low inclusive, high, high inclusive) of a range clause, bounds as keys."""
    field, spec = _field_body(body, "range")
    unknown = set(spec) - {"gt", "gte", "lt", "lte", "format", "time_zone", "boost", "relation"}
    if unknown:
        raise EsError(400, "parsing_exception", f"[range] query does not support {sorted(unknown)}")
    ftype = view.field_type(field)
    low, low_inc, high, high_inc = None, True, None, True
    for op, value in spec.items():
        if op in ("gt", "gte") and value is not None:
            low, low_inc = query_key(ftype, value, "range"), op == "gte"
        elif op in ("lt", "lte") and value is not None:
            high, high_inc = query_key(ftype, value, "range"), op == "lte"
    return field, low, low_inc, high, high_inc


def _range(body: Any, view: FieldView) -> Predicate:
    field, low, low_inc, high, high_inc = range_bounds(body, view)

    def test(value: Any) -> bool:
        if low is not None and (value < low or (value == low and not low_inc)):
            return False
        return high is None or value < high or (value == high and high_inc)

    return _any(view.keys(field), test)


def _term(body: Any, view: FieldView) -> Predicate:
    field, value = _field_body(body, "term")
    if isinstance(value, dict):
        value = value.get("value")
    wanted = query_key(view.field_type(field), value, "term")
    return _any(view.keys(field), lambda key: key == wanted)


def _terms(body: Any, view: FieldView) -> Predicate:
    field, values = _field_body(body, "terms")
    if not isinstance(values, list):
        raise EsError(400, "parsing_exception", "[terms] query lookup is not supported")
    ftype = view.field_type(field)
    wanted = {query_key(ftype, value, "terms") for value in values}
    return _any(view.keys(field), wanted.__contains__)


def _exists(body: Any, view: FieldView) -> Predicate:
    keys = view.keys(body["field"])
    return lambda pos: keys[pos] is not None


def _clauses(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _bool(body: Any, view: FieldView) -> Predicate | None:
    unknown = set(body) - {"filter", "must", "must_not", "should", "minimum_should_match"}
    if unknown - {"boost", "_name"}:
        raise EsError(400, "parsing_exception", f"[bool] query does not support {sorted(unknown)}")
    required = [
        compile_query(q, view) for k in ("filter", "must") for q in _clauses(body.get(k, []))
    ]
    required = [p for p in required if p is not None]
    negated = [compile_query(q, view) or _never for q in _clauses(body.get("must_not", []))]
    should = [compile_query(q, view) or _always for q in _clauses(body.get("should", []))]
    need = min(_minimum_should_match(body), len(should))
    if not (required or negated or need):
        return None

    def predicate(pos: int) -> bool:
        if not all(p(pos) for p in required) or any(p(pos) for p in negated):
            return False
        return need == 0 or sum(1 for p in should if p(pos)) >= need

    return predicate


def _minimum_should_match(body: dict[str, Any]) -> int:
    default = 0 if ("filter" in body or "must" in body) else 1
    value = str(body.get("minimum_should_match", default))
    if not value.isdigit():
        raise EsError(400, "parsing_exception", f"minimum_should_match [{value}] unsupported")
    return int(value)


def _never(pos: int) -> bool:
    return False


def _always(pos: int) -> bool:
    return True


_BUILDERS: dict[str, Callable[[Any, FieldView], Predicate | None]] = {
    "match_all": lambda body, view: None,
    "match_none": lambda body, view: _never,
    "range": _range,
    "term": _term,
    "terms": _terms,
    "exists": _exists,
    "bool": _bool,
}


def constant_score(query: Any) -> float:
    """The score every hit gets: filter-only bools score 0.0, anything else 1.0."""
    if isinstance(query, dict) and set(query) == {"bool"}:
        return 0.0 if not set(query["bool"]) & {"must", "should"} else 1.0
    return 1.0


def split_range(query: Any, field: str) -> tuple[dict[str, Any] | None, Any]:
    """(body of a range on `field` every hit must satisfy, the rest of the query).

    Finds a top-level range or one in a top-level bool's filter/must; otherwise (None, query).
    """
    if not isinstance(query, dict) or len(query) != 1:
        return None, query
    ((kind, body),) = query.items()
    if kind == "range" and isinstance(body, dict) and field in body:
        return body, None
    if kind != "bool" or not isinstance(body, dict):
        return None, query
    for key in ("filter", "must"):
        clauses = _clauses(body.get(key, []))
        for i, clause in enumerate(clauses):
            if isinstance(clause, dict) and field in clause.get("range", {}):
                rest = {**body, key: clauses[:i] + clauses[i + 1 :]}
                return clause["range"], _simplify({"bool": rest})
    return None, query


def _simplify(query: dict[str, Any]) -> Any:
    body = query["bool"]
    if any(_clauses(body.get(k, [])) for k in ("filter", "must", "must_not", "should")):
        return query
    return None
