"""Sort keys and the bisect planner of the MongoDB protocol fake's fast path.

A document's sort key is bytes: the field's datetime as a biased big-endian int64 of
milliseconds, then a BSON type-class byte and an order-preserving encoding of _id. Byte order
is then (field, _id) order, so a supported filter reduces to one [lower, upper) key range.
"""

from __future__ import annotations

import datetime
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import bson
from bson.datetime_ms import DatetimeMS
from bson.objectid import ObjectId

_U64 = struct.Struct(">Q")
_DOUBLE = struct.Struct(">d")
_BIAS = 1 << 63
Bounds = tuple[bytes, "bytes | None"]  # lower key inclusive, upper key exclusive (None: open)


def ts_key(ms: int) -> bytes:
    """The 8-byte key prefix of a datetime given in epoch milliseconds."""
    return _U64.pack(ms + _BIAS)


def to_ms(value: Any) -> int | None:
    """Epoch milliseconds of a BSON datetime value, None for any other type."""
    if isinstance(value, DatetimeMS):
        return int(value)
    if isinstance(value, datetime.datetime):
        return int(DatetimeMS(value))
    return None


def id_key(value: Any) -> bytes | None:
    """An order-preserving byte key for an _id (BSON type class first), or None if unsupported."""
    if isinstance(value, ObjectId):
        return b"\x07" + value.binary
    if isinstance(value, str):
        return b"\x02" + value.encode()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if math.isnan(value) or abs(value) > 2**53:
        return None
    (bits,) = _U64.unpack(_DOUBLE.pack(float(value) + 0.0))
    bits = bits ^ 0xFFFF_FFFF_FFFF_FFFF if bits >> 63 else bits | 1 << 63
    return b"\x01" + _U64.pack(bits)


def unique_key(value: Any) -> bytes:
    """The key used to reject duplicate _id values."""
    return id_key(value) or b"\xff" + bson.encode({"": value})


_OP_BOUNDS = {
    "$gt": lambda ms: (ts_key(ms + 1), None),
    "$gte": lambda ms: (ts_key(ms), None),
    "$lt": lambda ms: (b"", ts_key(ms)),
    "$lte": lambda ms: (b"", ts_key(ms + 1)),
}


def _tighten(a: Bounds, b: Bounds) -> Bounds:
    upper = a[1] if b[1] is None else b[1] if a[1] is None else min(a[1], b[1])
    return max(a[0], b[0]), upper


def field_bounds(cond: Any) -> Bounds | None:
    """Key range of a datetime equality or $gt/$gte/$lt/$lte condition, else None."""
    ms = to_ms(cond)
    if ms is not None:
        return ts_key(ms), ts_key(ms + 1)
    if not isinstance(cond, Mapping) or not cond or not set(cond) <= set(_OP_BOUNDS):
        return None
    bounds: Bounds = (b"", None)
    for op, value in cond.items():
        ms = to_ms(value)
        if ms is None:
            return None
        bounds = _tighten(bounds, _OP_BOUNDS[op](ms))
    return bounds


def sort_direction(sort: Mapping[str, Any], field: str) -> int | None:
    """1 or -1 for a sort on {field: d} or {field: d, _id: d}, else None."""
    items = list(sort.items())
    if not items or items[0][0] != field or items[0][1] not in (1, -1):
        return None
    if items[1:] not in ([], [("_id", items[0][1])]):
        return None
    return int(items[0][1])


@dataclass(frozen=True)
class Planner:
    """Turns filters on one datetime field into key ranges; id_kinds: _id type bytes present."""

    field: str
    id_kinds: frozenset[int]

    def bounds(self, flt: Any) -> Bounds | None:
        """The key range matching flt exactly, or None when the filter is not supported."""
        if not isinstance(flt, Mapping) or not flt:
            return None
        bounds: Bounds = (b"", None)
        for name, cond in flt.items():
            if name == self.field:
                more = field_bounds(cond)
            elif name == "$or":
                more = self._tiebreak_bounds(cond)
            elif name == "$and" and isinstance(cond, list) and cond:
                more = self._and_bounds(cond)
            else:
                return None
            if more is None:
                return None
            bounds = _tighten(bounds, more)
        return bounds

    def _and_bounds(self, filters: list[Any]) -> Bounds | None:
        bounds: Bounds = (b"", None)
        for flt in filters:
            more = self.bounds(flt)
            if more is None:
                return None
            bounds = _tighten(bounds, more)
        return bounds

    def _tiebreak_bounds(self, branches: Any) -> Bounds | None:
        if not isinstance(branches, list) or len(branches) != 2:
            return None
        for after, tie in (branches, branches[::-1]):
            key = self._tiebreak_key(after, tie)
            if key is not None:
                return key + b"\x00", None  # the smallest key above (t, id)
        return None

    def _tiebreak_key(self, after: Any, tie: Any) -> bytes | None:
        """(t, id) key for [{field: {$gt: t}}, {field: t, _id: {$gt: id}}], else None."""
        if not isinstance(after, Mapping) or not isinstance(tie, Mapping):
            return None
        if list(after) != [self.field] or set(tie) != {self.field, "_id"}:
            return None
        gt, id_cond, ms = after[self.field], tie["_id"], to_ms(tie[self.field])
        for cond in (gt, id_cond):
            if not isinstance(cond, Mapping) or list(cond) != ["$gt"]:
                return None
        idk = id_key(id_cond["$gt"])
        # $gt on _id only matches its own type class: other _id types would need mongomock
        if ms is None or to_ms(gt["$gt"]) != ms or idk is None or self.id_kinds - {idk[0]}:
            return None
        return ts_key(ms) + idk
