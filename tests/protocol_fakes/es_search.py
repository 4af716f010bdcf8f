"""Search execution of the Elasticsearch protocol fake over snapshots of indices.

Fast path: when the first sort clause is a single-valued date/number field F and either
every document has F or the query requires a range on F, hits come from the index's
F-sorted numpy arrays: bisect to the range and the search_after value, then walk whole
groups of equal F values, applying the rest of the query to those candidates only.
Otherwise every visible position is filtered and sorted (fine for test-sized indices).
Several indices are merged lazily on the full sort key.
"""

from __future__ import annotations

import heapq
from bisect import bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

import numpy as np
import orjson

from .es_query import EsError, compile_query, constant_score, range_bounds, split_range
from .es_sort import DOC_FIELDS, LONG_MAX, LONG_MIN, SortSpec, after_part, component, sort_value
from .es_store import Index

Target = tuple[Index, int]  # an index and the snapshot seq a search sees


@dataclass
class Search:
    """A parsed search request."""

    query: Any = None
    specs: list[SortSpec] | None = None
    size: int = 10
    start: int = 0
    after: list[Any] | None = None
    track_total: bool | int = 10000
    source: bool = True
    track_scores: bool = False


class _Plan:
    """One index's part of a search: predicate, sort key and search_after key."""

    def __init__(self, target: Target, search: Search, types: list[str]) -> None:
        self.index, self.snapshot = target
        self.search, self.types = search, types
        self.upto = self.index.visible_count(self.snapshot)
        self.score = constant_score(search.query)
        specs = search.specs or []
        parts = [
            component(s, t, self.index, self.index.seqs) for s, t in zip(specs, types, strict=True)
        ]
        self.key: Callable[[int], tuple] = lambda p: tuple(part(p) for part in parts)
        self.after = None
        if search.after is not None:
            self.after = tuple(
                after_part(s, t, v) for s, t, v in zip(specs, types, search.after, strict=True)
            )

    def alive(self) -> Callable[[int], bool]:
        """Visibility in this plan's snapshot."""
        dead, upto, snap = self.index.dead, self.upto, self.snapshot
        if not dead:
            return upto.__gt__
        return lambda p: p < upto and dead.get(p, LONG_MAX) > snap

    def stream(self, with_after: bool = True) -> Iterator[int]:
        """Matching positions in sort order."""
        fast = self._fast(with_after)
        return fast if fast is not None else self._generic(with_after)

    def _generic(self, with_after: bool) -> Iterator[int]:
        pred, alive = compile_query(self.search.query, self.index), self.alive()
        hits = [p for p in range(self.upto) if alive(p) and (pred is None or pred(p))]
        if self.search.specs:
            hits.sort(key=self.key)
        if with_after and self.after is not None:
            key, after = self.key, self.after
            hits = [p for p in hits if key(p) > after]
        return iter(hits)

    def _fast(self, with_after: bool) -> Iterator[int] | None:
        specs = self.search.specs
        if not specs or specs[0].field in (*DOC_FIELDS, "_score"):
            return None
        if self.types[0] not in ("date", "number"):
            return None
        field, desc = specs[0].field, specs[0].desc
        body, rest = split_range(self.search.query, field)
        values, positions, missing, many = self.index.sorted_index(field)
        if many or (missing and body is None):
            return None
        low, high = _slice(values, body and range_bounds({field: body[field]}, self.index))
        after = self.after if with_after else None
        if after is not None:
            first = -after[0] if desc else after[0]
            if first in (LONG_MAX, LONG_MIN):
                return None
            if desc:
                high = min(high, int(np.searchsorted(values, first, "right")))
            else:
                low = max(low, int(np.searchsorted(values, first, "left")))
        walk = _groups(values, positions, low, high, desc, self.search.start + self.search.size)
        return self._filter(walk, compile_query(rest, self.index), after, self._natural())

    def _natural(self) -> bool:
        specs = self.search.specs or []
        rest = specs[1:]
        if not rest:
            return True
        return len(rest) == 1 and rest[0].field in DOC_FIELDS and rest[0].desc == specs[0].desc

    def _filter(self, walk, pred, after, natural: bool) -> Iterator[int]:
        alive, key = self.alive(), self.key
        for chunk in walk:
            keep = [p for p in chunk if alive(p) and (pred is None or pred(p))]
            if not natural:
                keep.sort(key=key)
            if after is not None:  # only the first chunk can hold the search_after group
                keep = keep[bisect_right(keep, after, key=key) :]
                after = None
            yield from keep


def _slice(values: np.ndarray, bounds: tuple | None) -> tuple[int, int]:
    if bounds is None:
        return 0, len(values)
    _, low, low_inc, high, high_inc = bounds
    start = 0 if low is None else int(np.searchsorted(values, low, "left" if low_inc else "right"))
    end = len(values)
    if high is not None:
        end = int(np.searchsorted(values, high, "right" if high_inc else "left"))
    return start, max(start, end)


def _groups(values, positions, low: int, high: int, desc: bool, want: int) -> Iterator[list]:
    """Chunks of positions in key order, never splitting a group of equal keys."""
    step = max(64, min(want + 1, 10_001))
    while low < high:
        if desc:
            cut = max(low, int(np.searchsorted(values, values[max(low, high - step)], "left")))
            yield positions[cut:high][::-1].tolist()
            high = cut
        else:
            cut = min(
                high, int(np.searchsorted(values, values[min(high, low + step) - 1], "right"))
            )
            yield positions[low:cut].tolist()
            low = cut


def field_types(targets: list[Target], specs: list[SortSpec] | None) -> list[str]:
    """Each sort field's type, taken from the first index that knows it."""
    types = []
    for spec in specs or []:
        known = (index.known_type(spec.field) for index, _ in targets)
        types.append(next((t for t in known if t), "keyword"))
    return types


def execute(targets: list[Target], search: Search) -> tuple[list[tuple[_Plan, int]], int | None]:
    """(hits as (plan, position), total hits or None) of a search."""
    if search.after is not None and len(search.after) != len(search.specs or []):
        count = len(search.specs or [])
        reason = f"search_after has {len(search.after)} value(s) but sort has {count}."
        raise EsError(400, "illegal_argument_exception", reason)
    types = field_types(targets, search.specs)
    plans = [_Plan(target, search, types) for target in targets]
    stop = search.start + search.size
    hits = list(islice(_merge(plans, True), search.start, stop))
    return hits, _total(plans, search.track_total)


def _merge(plans: list[_Plan], with_after: bool) -> Iterator[tuple[_Plan, int]]:
    if len(plans) <= 1 or not plans[0].search.specs:
        return ((plan, p) for plan in plans for p in plan.stream(with_after))
    keyed = [_keyed(i, plan, plan.stream(with_after)) for i, plan in enumerate(plans)]
    return ((plan, p) for _, _, plan, p in heapq.merge(*keyed, key=lambda item: item[:2]))


def _keyed(i: int, plan: _Plan, stream: Iterator[int]) -> Iterator[tuple]:
    key = plan.key
    for p in stream:
        yield key(p), i, plan, p


def _total(plans: list[_Plan], track: bool | int) -> int | None:
    if track is False:
        return None
    limit = None if track is True else int(track)
    streams = [plan.stream(with_after=False) for plan in plans]
    matched = (1 for stream in streams for _ in stream)
    return sum(islice(matched, None if limit is None else limit + 1))


def render(hits: list[tuple[_Plan, int]], search: Search, total: int | None) -> bytes:
    """The `hits` object of the response, serialized."""
    writers: dict[int, Callable[[int], bytes]] = {}
    parts = []
    for plan, pos in hits:
        write = writers.get(id(plan)) or writers.setdefault(id(plan), _hit_writer(plan))
        parts.append(write(pos))
    sorted_ = bool(search.specs)
    meta = {"max_score": None if sorted_ or not hits else max(p.score for p, _ in hits)}
    if total is not None:
        limit = None if search.track_total is True else int(search.track_total)
        relation = "gte" if limit is not None and total > limit else "eq"
        meta = {"total": {"value": min(total, limit or total), "relation": relation}, **meta}
    return orjson.dumps(meta)[:-1] + b',"hits":[' + b",".join(parts) + b"]}"


def _hit_writer(plan: _Plan) -> Callable[[int], bytes]:
    """Position -> one serialized hit of this plan's index (raw _source bytes spliced in)."""
    search, index, dumps = plan.search, plan.index, orjson.dumps
    ids, sources = index.ids, (index.sources if search.source else None)
    score = b"null" if search.specs and not search.track_scores else dumps(plan.score)
    head = b'{"_index":' + index.name_json + b',"_id":'
    middle = b',"_score":' + score + (b',"_source":' if sources else b"")
    getters = _value_getters(plan)

    def write(pos: int) -> bytes:
        source = sources[pos] if sources else b""
        if not getters:
            return b"".join((head, dumps(ids[pos]), middle, source, b"}"))
        values = dumps([get(pos) for get in getters])
        return b"".join((head, dumps(ids[pos]), middle, source, b',"sort":', values, b"}"))

    return write


def _value_getters(plan: _Plan) -> list[Callable]:
    specs = plan.search.specs or []
    index = plan.index
    return [
        sort_value(s, t, index, index.seqs, plan.score)
        for s, t in zip(specs, plan.types, strict=True)
    ]
