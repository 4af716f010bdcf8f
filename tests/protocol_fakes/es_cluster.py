"""Cluster state of the Elasticsearch protocol fake: indices, writes, bulk, points in time."""

from __future__ import annotations

import fnmatch
import re
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

import orjson

from .es_query import EsError
from .es_store import Index, auto_id, check_index_name, flatten_mappings, new_id_source

_SHARDS = {"total": 1, "successful": 1, "failed": 0}
_TIME_UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "micros": 1e-6}


def keep_alive_seconds(text: str) -> float:
    """ "1m" -> 60.0, like an ES time value."""
    match = re.fullmatch(r"(\d+)(d|h|m|s|ms|micros|nanos)", str(text).strip())
    if match is None:
        reason = f"failed to parse setting [keep_alive] with value [{text}] as a time value"
        raise EsError(400, "parse_exception", reason)
    return int(match[1]) * _TIME_UNITS.get(match[2], 1e-9)


@dataclass
class Pit:
    """A point in time: the snapshot of each index it was opened on."""

    targets: list[tuple[Index, int]]
    keep_alive: float
    expires: float


class Cluster:
    """All indices and open PITs, guarded by one lock."""

    def __init__(self, auto_refresh: bool = False) -> None:
        self.lock = threading.RLock()
        self.indices: dict[str, Index] = {}
        self.pits: dict[str, Pit] = {}
        self.auto_refresh = auto_refresh
        self.seq = 0
        self._ids = new_id_source()

    def create_index(self, name: str, body: dict[str, Any] | None) -> Index:
        """indices.create; mapped fields get their columns filled as documents arrive."""
        check_index_name(name)
        if name in self.indices:
            reason = f"index [{name}/fake-uuid] already exists"
            raise EsError(400, "resource_already_exists_exception", reason, index=name)
        properties = ((body or {}).get("mappings") or {}).get("properties") or {}
        self.indices[name] = Index(name, flatten_mappings(properties))
        return self.indices[name]

    def resolve(self, expression: str | None, ignore_unavailable: bool = False) -> list[Index]:
        """Indices named by a comma list of names and `*` patterns (ES wildcard semantics)."""
        found: dict[str, Index] = {}
        for part in (expression or "_all").split(","):
            if part in ("_all", "*") or "*" in part:
                pattern = "*" if part == "_all" else part
                for name in sorted(self.indices):
                    if fnmatch.fnmatchcase(name, pattern):
                        found[name] = self.indices[name]
            elif part in self.indices:
                found[part] = self.indices[part]
            elif not ignore_unavailable:
                raise missing_index(part)
        return list(found.values())

    def write(
        self, name: str, doc_id: str | None, raw: bytes, create: bool, doc: Any = None
    ) -> dict[str, Any]:
        """Index one document (raw JSON object bytes, `doc` when already parsed); the response."""
        if doc is None:
            doc = _parse(raw)
        if not isinstance(doc, dict):
            raise EsError(400, "document_parsing_exception", "failed to parse: not an object")
        index = self.indices.get(name) or self.create_index(name, None)
        if doc_id is None:
            doc_id = auto_id(next(self._ids))
        elif create and doc_id in index.live:
            reason = f"[{doc_id}]: version conflict, document already exists (current version "
            reason += f"[{index.versions.get(doc_id, 1)}])"
            raise EsError(409, "version_conflict_engine_exception", reason, index=name)
        self.seq += 1
        result, version = index.add(doc_id, raw, doc, self.seq)
        self._after_write(index)
        status = 201 if result == "created" else 200
        return _write_result(name, doc_id, version, result, self.seq, status)

    def delete_doc(self, name: str, doc_id: str) -> dict[str, Any]:
        """Delete one document; the ES delete response (status 404 when not found)."""
        index = self.indices.get(name)
        if index is None:
            raise missing_index(name)
        self.seq += 1
        result, version = index.delete(doc_id, self.seq)
        self._after_write(index)
        status = 404 if result == "not_found" else 200
        return _write_result(name, doc_id, version, result, self.seq, status)

    def bulk(self, body: bytes, default_index: str | None) -> list[dict[str, Any]]:
        """The items of a _bulk request (NDJSON action lines, each but delete with a source)."""
        lines = [line for line in body.split(b"\n") if line.strip()]
        items, i = [], 0
        while i < len(lines):
            op, meta = _action(lines[i], i + 1)
            if op != "delete" and i + 1 == len(lines):
                raise EsError(400, "illegal_argument_exception", f"[{op}] has no source line")
            raw = lines[i + 1] if op != "delete" else b""
            i += 1 if op == "delete" else 2
            items.append({op: self._bulk_item(op, meta, raw, default_index)})
        return items

    def _bulk_item(self, op: str, meta: dict[str, Any], raw: bytes, default: str | None):
        name, doc_id = meta.get("_index", default), meta.get("_id")
        try:
            if name is None:
                raise EsError(400, "action_request_validation_exception", "index is missing")
            if op == "delete":
                return self.delete_doc(name, str(doc_id))
            if op not in ("index", "create"):
                raise EsError(400, "illegal_argument_exception", f"bulk [{op}] unsupported")
            check_index_name(name)
            return self.write(name, None if doc_id is None else str(doc_id), raw, op == "create")
        except EsError as error:
            cause = {"type": error.kind, "reason": error.reason, **error.extra}
            return {"_index": name, "_id": doc_id, "status": error.status, "error": cause}

    def _after_write(self, index: Index) -> None:
        if self.auto_refresh:
            index.visible_seq = self.seq

    def refresh(self, indices: list[Index]) -> None:
        """Make everything written so far visible to new searches."""
        for index in indices:
            index.visible_seq = self.seq

    def open_pit(self, indices: list[Index], keep_alive: str) -> str:
        """A new point in time over the indices as they are visible now."""
        seconds = keep_alive_seconds(keep_alive)
        pit_id = secrets.token_urlsafe(48)
        targets = [(index, index.visible_seq) for index in indices]
        self.pits[pit_id] = Pit(targets, seconds, time.monotonic() + seconds)
        self._expire()
        return pit_id

    def use_pit(self, pit_id: str, keep_alive: str | None) -> list[tuple[Index, int]]:
        """The snapshot of a live PIT, extending its life when keep_alive is given."""
        self._expire()
        pit = self.pits.get(pit_id)
        if pit is None:
            reason = f"No search context found for id [{pit_id[:32]}]"
            raise EsError(404, "search_context_missing_exception", reason)
        if keep_alive is not None:
            pit.keep_alive = keep_alive_seconds(keep_alive)
        pit.expires = time.monotonic() + pit.keep_alive
        return pit.targets

    def close_pit(self, pit_id: str) -> bool:
        """Free a PIT; False when it was unknown or expired."""
        self._expire()
        return self.pits.pop(pit_id, None) is not None

    def expire_pits(self) -> None:
        """Test helper: expire every open PIT now."""
        self.pits.clear()

    def _expire(self) -> None:
        now = time.monotonic()
        for pit_id in [k for k, pit in self.pits.items() if pit.expires < now]:
            del self.pits[pit_id]


def _action(line: bytes, number: int) -> tuple[str, dict[str, Any]]:
    action = _parse(line)
    if not isinstance(action, dict) or len(action) != 1:
        reason = f"Malformed action/metadata line [{number}], expected a single-key object"
        raise EsError(400, "illegal_argument_exception", reason)
    ((op, meta),) = action.items()
    return op, meta if isinstance(meta, dict) else {}


def _parse(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def missing_index(name: str) -> EsError:
    """ES's error for a concrete index that does not exist."""
    extra = {"resource.type": "index_or_alias", "resource.id": name, "index": name}
    return EsError(404, "index_not_found_exception", f"no such index [{name}]", **extra)


def _write_result(name: str, doc_id: str, version: int, result: str, seq: int, status: int):
    return {
        "_index": name,
        "_id": doc_id,
        "_version": version,
        "result": result,
        "_shards": _SHARDS,
        "_seq_no": seq,
        "_primary_term": 1,
        "status": status,
    }
