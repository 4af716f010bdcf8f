"""In-memory collections behind the MongoDB protocol fake, kept as raw BSON.

Each collection keeps its visible documents as raw BSON bytes in insertion order and, a
second time (same objects), sorted by (sorted_field, _id). Filters on that datetime field
(ranges, equality, the "$or" keyset tie-breaker) sorted on it are answered with bisect;
everything else goes to a mongomock mirror built from the raw documents on demand.
"""

from __future__ import annotations

import logging
import threading
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import bson
import mongomock
from bson.codec_options import CodecOptions, DatetimeConversion
from bson.objectid import ObjectId

from tests.protocol_fakes.mongodb_query import (
    Planner,
    id_key,
    sort_direction,
    to_ms,
    ts_key,
    unique_key,
)

logger = logging.getLogger(__name__)

KEY_OPTS = CodecOptions(datetime_conversion=DatetimeConversion.DATETIME_MS)


def prepare(item: bytes | Mapping[str, Any]) -> tuple[bytes, Mapping[str, Any]]:
    """Raw BSON plus a decoded view of one document to insert, adding an ObjectId _id if absent."""
    if isinstance(item, (bytes, bytearray, memoryview)):
        doc = bson.decode(item, KEY_OPTS)
        if "_id" in doc:
            return bytes(item), doc
        item = bson.decode(item)
    if "_id" not in item:
        item = {"_id": ObjectId(), **item}
    return bson.encode(item), item


def _window(rows: list[bytes], lo: int, hi: int, skip: int, limit: int, desc: bool) -> list[bytes]:
    if desc:
        end = max(lo, hi - skip)
        start = max(lo, end - limit) if limit else lo
        return rows[start:end][::-1]
    start = min(hi, lo + skip)
    return rows[start : min(hi, start + limit) if limit else hi]


def _scratch(docs: list[dict[str, Any]]) -> Any:
    coll = mongomock.MongoClient().get_database("fake").get_collection("scratch")
    if docs:
        coll.insert_many(docs)
    return coll


def project(rows: list[bytes], projection: Mapping[str, Any]) -> list[bytes]:
    """Apply a find projection to raw documents with mongomock."""
    found = _scratch([bson.decode(r) for r in rows]).find({}, dict(projection))
    return [bson.encode(d) for d in found]


class Collection:
    """One collection: visible raw documents in insertion and (field, _id) order."""

    def __init__(self, field: str, fast: bool = True) -> None:
        self.field, self.fast = field, fast
        self.ids: set[bytes] = set()
        self.pending: list[tuple[bytes, bytes | None, bool]] = []
        self.held = False
        self.indexes: list[dict[str, Any]] = [{"v": 2, "key": {"_id": 1}, "name": "_id_"}]
        self.version = 0
        self._mirror: Any = None
        self._mirror_version = -1
        self._clear()

    def _clear(self) -> None:
        self.natural: list[bytes] = []
        self.keys: list[bytes] = []
        self.ordered: list[bytes] = []
        self.id_kinds: set[int] = set()
        self.unindexed = 0  # visible documents not in keys
        self.blockers = 0  # of those, documents a datetime filter on field might match

    def _classify(self, doc: Mapping[str, Any]) -> tuple[bytes | None, bool]:
        value = doc.get(self.field)
        ms, idk = to_ms(value), id_key(doc.get("_id"))
        if ms is not None and idk is not None:
            return ts_key(ms) + idk, False
        return None, ms is not None or isinstance(value, list)

    def insert(
        self,
        items: Iterable[tuple[bytes, Mapping[str, Any]]],
        ordered: bool = True,
        hold: bool = False,
    ) -> list[tuple[int, Any]]:
        """Insert prepared documents (held back when hold or self.held).

        Returns [(index, _id)] of duplicate-key rejections.
        """
        entries, errors = [], []
        for i, (raw, doc) in enumerate(items):
            uid = unique_key(doc.get("_id"))
            if uid in self.ids:
                errors.append((i, doc.get("_id")))
                if ordered:
                    break
                continue
            self.ids.add(uid)
            entries.append((raw, *self._classify(doc)))
        if self.held or hold:
            self.pending.extend(entries)
        else:
            self._add(entries)
        return errors

    def release(self) -> int:
        """Make held-back documents visible and stop holding; returns how many."""
        entries, self.pending, self.held = self.pending, [], False
        self._add(entries)
        return len(entries)

    def _add(self, entries: list[tuple[bytes, bytes | None, bool]]) -> None:
        self.natural.extend(raw for raw, _, _ in entries)
        keyed = sorted((key, raw) for raw, key, _ in entries if key is not None)
        self.unindexed += len(entries) - len(keyed)
        self.blockers += sum(blocking for _, _, blocking in entries)
        self.id_kinds.update(key[8] for key, _ in keyed)
        self.version += 1
        self._index(keyed)

    def _index(self, keyed: list[tuple[bytes, bytes]]) -> None:
        if not keyed:
            return
        if not self.keys or keyed[0][0] > self.keys[-1]:
            self.keys.extend(key for key, _ in keyed)
            self.ordered.extend(raw for _, raw in keyed)
        elif len(keyed) < 64:
            for key, raw in keyed:
                i = bisect_left(self.keys, key)
                self.keys.insert(i, key)
                self.ordered.insert(i, raw)
        else:
            self._merge(keyed)

    def _merge(self, keyed: list[tuple[bytes, bytes]]) -> None:
        merged = sorted(
            [*zip(self.keys, self.ordered, strict=True), *keyed], key=lambda pair: pair[0]
        )
        self.keys = [key for key, _ in merged]
        self.ordered = [raw for _, raw in merged]

    def remove(self, ids: Iterable[Any]) -> int:
        """Delete the visible documents with these _id values; returns how many."""
        doomed = {unique_key(value) for value in ids}
        before = self.natural
        decoded = [(raw, bson.decode(raw, KEY_OPTS)) for raw in before]
        kept = [(raw, doc) for raw, doc in decoded if unique_key(doc.get("_id")) not in doomed]
        self.ids -= doomed
        self._clear()
        self._add([(raw, *self._classify(doc)) for raw, doc in kept])
        return len(before) - len(kept)

    def find(
        self, flt: Mapping[str, Any], sort: Mapping[str, Any] | None, skip: int, limit: int
    ) -> tuple[list[bytes], bool]:
        """Matching raw documents (before projection) and whether the fast path answered."""
        rows = self._fast_find(flt, sort or {}, skip, limit) if self.fast else None
        if rows is not None:
            return rows, True
        found = self.mirror().find(flt, sort=list((sort or {}).items()) or None, skip=skip)
        return [bson.encode(d) for d in found.limit(limit)], False

    def count(self, flt: Mapping[str, Any], skip: int = 0, limit: int = 0) -> int:
        """How many visible documents match (fast when the filter has a bisect span)."""
        span = self._span(flt) if self.fast and flt else None
        if not flt:
            n = len(self.natural)
        else:
            n = span[1] - span[0] if span else self.mirror().count_documents(flt)
        n = max(0, n - skip)
        return min(n, limit) if limit else n

    def _fast_find(self, flt, sort, skip, limit) -> list[bytes] | None:
        if not flt and not sort:
            return _window(self.natural, 0, len(self.natural), skip, limit, False)
        direction, span = sort_direction(sort, self.field), self._span(flt)
        if direction is None or span is None:
            return None
        return _window(self.ordered, *span, skip, limit, direction < 0)

    def _span(self, flt: Mapping[str, Any]) -> tuple[int, int] | None:
        if not flt:
            return (0, len(self.keys)) if self.unindexed == 0 else None
        planner = Planner(self.field, frozenset(self.id_kinds))
        bounds = planner.bounds(flt) if self.blockers == 0 else None
        if bounds is None:
            return None
        lo = bisect_left(self.keys, bounds[0])
        hi = len(self.keys) if bounds[1] is None else bisect_left(self.keys, bounds[1])
        return lo, max(lo, hi)

    def mirror(self) -> Any:
        """A mongomock collection holding the visible documents (rebuilt after changes)."""
        if self._mirror_version != self.version:
            if len(self.natural) > 100_000:
                logger.warning("mongomock mirror of %d documents: slow", len(self.natural))
            self._mirror = _scratch([bson.decode(raw) for raw in self.natural])
            self._mirror_version = self.version
        return self._mirror


class Store:
    """All databases and collections of one fake server, guarded by one lock."""

    def __init__(self, sorted_field: str = "timestamp", fast_path: bool = True) -> None:
        self.sorted_field, self.fast_path = sorted_field, fast_path
        self.lock = threading.RLock()
        self.stats: Counter[str] = Counter()
        self.collections: dict[tuple[str, str], Collection] = {}

    def get(self, db: str, name: str, create: bool = False) -> Collection | None:
        """The collection, created on demand when create is true."""
        coll = self.collections.get((db, name))
        if coll is None and create:
            coll = self.collections[(db, name)] = Collection(self.sorted_field, self.fast_path)
        return coll

    def names(self, db: str) -> list[str]:
        """Collection names in one database."""
        return sorted(name for d, name in self.collections if d == db)

    def databases(self) -> list[str]:
        """Database names holding at least one collection."""
        return sorted({d for d, _ in self.collections})

    def drop(self, db: str, name: str | None = None) -> int:
        """Drop one collection, or every collection of db when name is None; returns how many."""
        doomed = [k for k in self.collections if k[0] == db and name in (None, k[1])]
        for key in doomed:
            del self.collections[key]
        return len(doomed)
