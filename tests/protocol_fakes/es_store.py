"""Indices of the Elasticsearch protocol fake: raw sources, visibility, typed columns.

An index appends every write as a new position holding the raw `_source` bytes exactly as
sent. A global sequence number orders writes: position p is visible in a snapshot S when
its seq <= S and it was not overwritten or deleted at a seq <= S. A refresh moves the
index's snapshot to the latest seq; a point in time keeps the snapshot it was opened with.

Field values are extracted lazily into per-field columns of comparable keys (see
es_query); fields named in explicit mappings are extracted as documents arrive, any other
field on first use (one parse of every stored source). For date and number fields a
(key, position)-sorted numpy index is rebuilt incrementally when new positions appear.
"""

from __future__ import annotations

import base64
import itertools
import os
import re
from array import array
from bisect import bisect_right
from typing import Any

import numpy as np
import orjson

from .es_query import EsError, infer_type, mapping_type, to_key

_BAD_NAME = re.compile(r'[\\/*?"<>| ,#:A-Z]|^[-_+]|^\.\.?$')
_PATH_CACHE: dict[str, list[str]] = {}


def resolve_path(source: Any, path: str, out: list[Any]) -> list[Any]:
    """Leaf values at a dotted path, through nested objects, arrays and dotted keys."""
    if isinstance(source, list):
        for item in source:
            resolve_path(item, path, out)
        return out
    if not isinstance(source, dict):
        return out
    if path in source:
        _add_leaves(source[path], out)
    dot = path.find(".")
    while dot != -1:
        head = source.get(path[:dot])
        if head is not None:
            resolve_path(head, path[dot + 1 :], out)
        dot = path.find(".", dot + 1)
    return out


def _add_leaves(value: Any, out: list[Any]) -> None:
    if isinstance(value, list):
        for item in value:
            _add_leaves(item, out)
    elif value is not None and not isinstance(value, dict):
        out.append(value)


def flatten_mappings(properties: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """{"host": {"properties": {"name": {"type": "keyword"}}}} -> {"host.name": "keyword"}."""
    flat = {}
    for name, spec in properties.items():
        if "properties" in spec:
            flat.update(flatten_mappings(spec["properties"], f"{prefix}{name}."))
        else:
            flat[f"{prefix}{name}"] = mapping_type(spec.get("type", "object"))
    return flat


def check_index_name(name: str) -> None:
    """ES's index-name rules (lowercase, no wildcard or separator characters)."""
    if not name or _BAD_NAME.search(name) or len(name.encode()) > 255:
        raise EsError(
            400, "invalid_index_name_exception", f"Invalid index name [{name}]", index=name
        )


class Index:
    """One index: append-only positions plus the lazily built columns over them."""

    def __init__(self, name: str, mappings: dict[str, str] | None = None) -> None:
        self.name, self.name_json = name, orjson.dumps(name)
        self.sources: list[bytes] = []
        self.ids: list[str] = []
        self.seqs = array("q")  # global seq of each position, ascending
        self.dead: dict[int, int] = {}  # position -> seq that overwrote or deleted it
        self.live: dict[str, int] = {}  # id -> position of its current version
        self.versions: dict[str, int] = {}  # only ids written more than once
        self.visible_seq = 0
        self.types: dict[str, str] = dict(mappings or {})
        self.columns: dict[str, list[Any]] = {field: [] for field in self.types}
        self._sorted: dict[str, tuple[int, np.ndarray, np.ndarray, int, bool]] = {}

    def add(self, doc_id: str, raw: bytes, doc: dict[str, Any], seq: int) -> tuple[str, int]:
        """Store a new version of a document; (result, version)."""
        old = self.live.get(doc_id)
        if old is not None:
            self.dead[old] = seq
        self.live[doc_id] = len(self.sources)
        self.sources.append(raw)
        self.ids.append(doc_id)
        self.seqs.append(seq)
        for field, column in self.columns.items():
            column.append(self._key(field, doc))
        if old is None and doc_id not in self.versions:
            return "created", 1  # versions only records documents written more than once
        version = self.versions[doc_id] = self.versions.get(doc_id, 1) + 1
        return ("created" if old is None else "updated"), version

    def delete(self, doc_id: str, seq: int) -> tuple[str, int]:
        """Mark the current version of a document deleted; (result, version)."""
        old = self.live.pop(doc_id, None)
        if old is None:
            return "not_found", self.versions.get(doc_id, 0) + 1
        self.dead[old] = seq
        version = self.versions[doc_id] = self.versions.get(doc_id, 1) + 1
        return "deleted", version

    def visible_count(self, snapshot: int) -> int:
        """How many positions were written at or before the snapshot seq."""
        return bisect_right(self.seqs, snapshot)

    def count(self, snapshot: int) -> int:
        """Documents visible in a snapshot."""
        upto = self.visible_count(snapshot)
        return upto - sum(1 for pos, seq in self.dead.items() if pos < upto and seq <= snapshot)

    def known_type(self, field: str) -> str | None:
        """The mapped or inferred type of a field, None when no document has it yet."""
        field = self._alias(field)
        if field not in self.types:
            self.keys(field)
        return self.types.get(field)

    def field_type(self, field: str) -> str:
        """The field's type; keyword for a field never seen."""
        return self.known_type(field) or "keyword"

    def keys(self, field: str) -> list[Any]:
        """Per-position comparable keys of a field (None: missing, list: several values)."""
        field = self._alias(field)
        column = self.columns.setdefault(field, [])
        if len(column) < len(self.sources):
            loads, key = orjson.loads, self._key
            column.extend([key(field, loads(raw)) for raw in self.sources[len(column) :]])
        return column

    def sorted_index(self, field: str) -> tuple[np.ndarray, np.ndarray, int, bool]:
        """(keys ascending, their positions, positions missing the field, any multi-valued)."""
        column = self.keys(field)
        built = self._sorted.get(field)
        start = built[0] if built else 0
        if built and start == len(column):
            return built[1:]
        fresh = [(v, start + i) for i, v in enumerate(column[start:]) if v is not None]
        many = any(type(v) is list for v, _ in fresh) or bool(built and built[4])
        dtype = np.int64 if self.field_type(field) == "date" else np.float64
        values = np.array([0 if many else v for v, _ in fresh], dtype=dtype)
        positions = np.array([p for _, p in fresh], dtype=np.int64)
        missing = (built[3] if built else 0) + len(column) - start - len(fresh)
        if built:
            values = np.concatenate((built[1], values))
            positions = np.concatenate((built[2], positions))
            order = np.argsort(values, kind="stable")
            values, positions = values[order], positions[order]
        elif len(values):
            order = np.argsort(values, kind="stable")
            values, positions = values[order], positions[order]
        self._sorted[field] = (len(column), values, positions, missing, many)
        return values, positions, missing, many

    def _alias(self, field: str) -> str:
        if field.endswith(".keyword") and field not in self.types:
            return field[: -len(".keyword")]
        return field

    def _key(self, field: str, doc: dict[str, Any]) -> Any:
        value = doc.get(field)
        values = [value] if type(value) in (str, int, float) else resolve_path(doc, field, [])
        if not values:
            return None
        ftype = self.types.get(field) or self.types.setdefault(field, infer_type(values[0]))
        if len(values) == 1:
            return to_key(ftype, values[0])
        keys = [k for k in (to_key(ftype, v) for v in values) if k is not None]
        return keys if len(keys) > 1 else (keys[0] if keys else None)


def new_id_source() -> itertools.count:
    """A counter for auto ids; `auto_id` turns its numbers into 20-character ES-like ids."""
    return itertools.count(1)


_ID_PREFIX = os.urandom(7)


def auto_id(number: int) -> str:
    """A 20-character URL-safe id like the ones ES generates."""
    return base64.urlsafe_b64encode(_ID_PREFIX + number.to_bytes(8, "big")).decode()
