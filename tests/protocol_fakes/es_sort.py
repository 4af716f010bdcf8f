"""Sort specifications of the Elasticsearch protocol fake: keys, search_after, sort values.

A sort key is a tuple with one component per sort clause. Numeric and date fields use the
value (negated when descending) and, for a missing value, the sentinel real ES puts in the
hit's sort values (Long.MAX_VALUE / Long.MIN_VALUE by order and `missing`). Keyword fields
use (missing flag, value) pairs, so a missing value sorts first or last in either order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .es_query import EsError, FieldView, format_millis, to_key

LONG_MAX = 2**63 - 1
LONG_MIN = -(2**63)
DOC_FIELDS = ("_shard_doc", "_doc")
_SPEC_KEYS = {"order", "missing", "format", "unmapped_type", "mode", "numeric_type"}
_ISO_FORMATS = {
    "strict_date_optional_time_nanos",
    "strict_date_optional_time",
    "date_optional_time",
    "strict_date_time",
    "date_time",
}


@dataclass(frozen=True)
class SortSpec:
    """One sort clause: field (or _shard_doc/_doc/_score), order, missing, date format."""

    field: str
    desc: bool = False
    missing: Any = "_last"
    fmt: str | None = None


class Desc:
    """Reverses the order of a keyword value inside a sort key tuple."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Desc) and self.value == other.value

    def __lt__(self, other: Desc) -> bool:
        return self.value > other.value

    def __gt__(self, other: Desc) -> bool:
        return self.value < other.value

    __hash__ = None  # type: ignore[assignment]


def parse_sort(sort: Any) -> list[SortSpec]:
    """Sort clauses from a body `sort` (string, object or list) or a `f:asc,g` query param."""
    if isinstance(sort, str):
        sort = [
            {name: order or "asc"} for name, _, order in (p.partition(":") for p in sort.split(","))
        ]
    specs = []
    for item in sort if isinstance(sort, list) else [sort]:
        pairs = [(item, {})] if isinstance(item, str) else list(item.items())
        specs.extend(_spec(name, value) for name, value in pairs)
    return specs


def _spec(name: str, value: Any) -> SortSpec:
    if name.startswith("_") and name not in (*DOC_FIELDS, "_score"):
        raise EsError(400, "parsing_exception", f"sort [{name}] is not supported by the fake")
    options = {"order": value} if isinstance(value, str) else dict(value)
    unknown = set(options) - _SPEC_KEYS
    if unknown:
        raise EsError(400, "parsing_exception", f"[{name}] sort does not support {sorted(unknown)}")
    order = options.get("order", "desc" if name == "_score" else "asc")
    if order not in ("asc", "desc"):
        raise EsError(400, "illegal_argument_exception", f"Unknown SortOrder [{order}]")
    fmt = options.get("format")
    if fmt is not None and fmt not in _ISO_FORMATS and fmt != "epoch_millis":
        raise EsError(400, "illegal_argument_exception", f"format [{fmt}] unsupported by the fake")
    return SortSpec(name, order == "desc", options.get("missing", "_last"), fmt)


def _numeric_missing(spec: SortSpec, ftype: str) -> Any:
    if spec.missing not in ("_last", "_first"):
        return to_key(ftype, spec.missing)
    return LONG_MIN if (spec.missing == "_last") == spec.desc else LONG_MAX


def _keyword_flag(spec: SortSpec) -> int:
    return -1 if spec.missing == "_first" else 1


def component(spec: SortSpec, ftype: str, view: FieldView, seqs: list[int]) -> Callable:
    """Position -> this clause's part of the sort key."""
    if spec.field in DOC_FIELDS:
        return (lambda p: -seqs[p]) if spec.desc else seqs.__getitem__
    if spec.field == "_score":
        return lambda p: 0
    keys, desc = view.keys(spec.field), spec.desc
    if ftype in ("date", "number"):
        missing = _numeric_missing(spec, ftype)

        def numeric(p: int) -> Any:
            value = keys[p]
            if value is None:
                value = missing
            elif type(value) is list:
                value = max(value) if desc else min(value)
            return -value if desc else value

        return numeric
    return lambda p: _keyword_part(spec, keys[p])


def _keyword_part(spec: SortSpec, value: Any) -> tuple[int, Any]:
    if value is None and spec.missing in ("_last", "_first"):
        return (_keyword_flag(spec), None)
    if value is None:
        value = to_key("keyword", spec.missing)
    elif type(value) is list:
        value = max(value) if spec.desc else min(value)
    return (0, Desc(value) if spec.desc else value)


def after_part(spec: SortSpec, ftype: str, value: Any) -> Any:
    """A search_after value (as a hit's sort value carried it) as a key component."""
    if spec.field in DOC_FIELDS:
        return -int(value) if spec.desc else int(value)
    if spec.field == "_score":
        return 0
    if ftype in ("date", "number"):
        key = _numeric_missing(spec, ftype) if value is None else to_key(ftype, value)
        if key is None:
            raise EsError(400, "parse_exception", f"failed to parse search_after value [{value}]")
        return -key if spec.desc else key
    return _keyword_part(spec, None if value is None else to_key("keyword", value))


def sort_value(spec: SortSpec, ftype: str, view: FieldView, seqs: list[int], score: float):
    """Position -> the value ES puts in the hit's `sort` array for this clause."""
    if spec.field in DOC_FIELDS:
        return seqs.__getitem__
    if spec.field == "_score":
        return lambda p: score
    keys, pick = view.keys(spec.field), (max if spec.desc else min)
    numeric = ftype in ("date", "number")
    missing = _numeric_missing(spec, ftype) if numeric else None
    dated = ftype == "date" and spec.fmt is not None

    def value(p: int) -> Any:
        key = keys[p]
        if type(key) is list:
            key = pick(key)
        if key is None:
            return None if dated or not numeric else missing
        if dated:
            return str(key) if spec.fmt == "epoch_millis" else format_millis(key)
        return key

    return value
