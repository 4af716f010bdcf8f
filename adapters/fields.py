"""The field-level primitives of the adapters' mapping: paths, numbers and times.

Pure functions; a value that cannot be used raises MappingError naming the field.
as_mapping_error() turns anything else raised while mapping a document into one.
"""

from __future__ import annotations

import logging
import math
import re
from datetime import datetime, timedelta, timezone
from numbers import Real
from typing import Any

log = logging.getLogger(__name__)
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_FAST_ISO_LENGTHS = frozenset({20, 24, 27})
_ISO_TIME = re.compile(
    r"(?P<base>\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d)(?:[.,](?P<frac>\d+))?"
    r"(?P<zone>[Zz]|[+-]\d\d(?::?\d\d)?)?"
)


class MappingError(ValueError):
    """A document that cannot become a contract record: which field, and why."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


def get_path(doc: object, path: str) -> Any:
    """The value at a dotted path: a literal key first, then through nested objects
    (any split of the path into keys: {"system.cpu": {"user": 1}} finds "system.cpu.user").
    None when absent."""
    if not isinstance(doc, dict):
        return None
    if path in doc:
        return doc[path]
    parts = path.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        head = ".".join(parts[:cut])
        if head in doc:
            found = get_path(doc[head], ".".join(parts[cut:]))
            if found is not None:
                return found
    return None


def to_number(value: object, field: str) -> float:
    """A finite number as float; MappingError if missing (None), a boolean or not a number."""
    if type(value) is float or type(value) is int:  # the common case, without the ABC check
        number = float(value)
        if math.isfinite(number):
            return number
    if value is None:
        raise MappingError(field, "missing")
    if isinstance(value, bool) or not isinstance(value, Real):
        raise MappingError(field, f"not a number (got {value!r:.60})")
    number = float(value)
    if not math.isfinite(number):
        raise MappingError(field, f"not a finite number (got {number})")
    return number


def parse_time(value: object, field: str = "timestamp") -> datetime:
    """An aware UTC datetime from a datetime (naive = UTC), an ISO 8601 string (Z, offsets,
    any fractional digits: kept to the microsecond) or epoch milliseconds."""
    if isinstance(value, datetime):
        if value.tzinfo is timezone.utc:
            return value
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        try:
            return value.astimezone(timezone.utc)
        except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 is in year 0 in UTC
            raise MappingError(field, f"out of range in UTC (got {value.isoformat()})") from None
    if isinstance(value, str):
        return _parse_iso(value, field)
    if isinstance(value, Real) and not isinstance(value, bool):
        try:
            return EPOCH + timedelta(milliseconds=float(value))
        except (OverflowError, ValueError):
            raise MappingError(field, f"epoch milliseconds out of range (got {value})") from None
    what = "missing" if value is None else f"not a time (got {value!r:.60})"
    raise MappingError(field, what)


def _parse_iso(text: str, field: str) -> datetime:
    if len(text) in _FAST_ISO_LENGTHS and text[10] == "T" and text[-1] == "Z":
        try:  # the common shapes: ...THH:MM:SS[.fff[fff]]Z
            return datetime.fromisoformat(text[:-1]).replace(tzinfo=timezone.utc)
        except ValueError:
            pass
    match = _ISO_TIME.fullmatch(text.strip())
    if match is None:
        raise MappingError(field, f"not an ISO 8601 time (got {text!r:.60})")
    fraction = (match["frac"] or "")[:6].ljust(6, "0")
    zone = match["zone"] or ""
    if zone in ("Z", "z"):
        zone = "+00:00"
    elif zone:
        zone = f"{zone[:3]}:{zone[-2:]}" if len(zone) > 3 else f"{zone}:00"
    try:
        moment = datetime.fromisoformat(f"{match['base']}.{fraction}{zone}")
    except ValueError as exc:
        raise MappingError(field, f"not a valid time ({exc})") from None
    return parse_time(moment, field)


def format_time(moment: datetime) -> str:
    """ISO 8601 in UTC with a Z, as /feed takes it (microseconds only when present)."""
    return parse_time(moment).isoformat().replace("+00:00", "Z")


def as_mapping_error(error: Exception) -> MappingError:
    """What mapping one document (or a Metricbeat bucket) raised, as a MappingError. A
    MappingError is the document's fault; anything else (a value no check foresaw, or a
    bug) is logged with its traceback, and the document is quarantined all the same: one
    document never stops an adapter."""
    if isinstance(error, MappingError):
        return error
    name = type(error).__name__
    log.warning("unexpected %s mapping a document (quarantined)", name, exc_info=error)
    return MappingError("(document)", f"unexpected {name}: {error}")
