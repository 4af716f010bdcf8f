"""REST endpoints of the Elasticsearch protocol fake: request in, (status, body) out.

Each handler gets the parsed request and returns a status and a JSON-able object or
pre-serialized bytes. Errors are raised as EsError and rendered ES-shaped by the HTTP layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from .es_cluster import Cluster, missing_index
from .es_query import EsError
from .es_search import Search, execute, render
from .es_sort import SortSpec, parse_sort

_BODY_KEYS = {"query", "sort", "size", "from", "search_after", "pit", "track_total_hits"}
_BODY_KEYS |= {"_source", "timeout", "track_scores"}
_REJECTED_PARAMS = ("q", "scroll", "rest_total_hits_as_int")
Reply = tuple[int, Any]


@dataclass
class Request:
    """One HTTP request, decoded."""

    method: str
    path: str
    params: dict[str, str]
    body: bytes = b""
    args: dict[str, str] = field(default_factory=dict)

    def json(self) -> dict[str, Any]:
        """The JSON body, {} when empty."""
        if not self.body.strip():
            return {}
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError as error:
            raise EsError(400, "parse_exception", f"request body is not JSON: {error}") from None

    def flag(self, name: str, default: bool = False) -> bool:
        """A boolean query parameter ("true", "false" or present without a value)."""
        value = self.params.get(name)
        return default if value is None else value in ("", "true")


def shards(count: int) -> dict[str, int]:
    """The `_shards` block for `count` single-shard indices."""
    return {"total": count, "successful": count, "skipped": 0, "failed": 0}


class Api:
    """The endpoints, over one Cluster."""

    def __init__(self, cluster: Cluster, version: str) -> None:
        self.cluster, self.version = cluster, version

    def info(self, req: Request) -> Reply:
        """GET / : name, cluster and version block."""
        major = int(self.version.split(".")[0])
        lucene, wire, index = (
            ("10.2.2", "8.19.0", "8.0.0") if major >= 9 else ("9.11.1", "7.17.0", "7.0.0")
        )
        version = {
            "number": self.version,
            "build_flavor": "default",
            "build_type": "docker",
            "build_hash": "0000000000000000000000000000000000000000",
            "build_date": "2025-01-01T00:00:00.000000000Z",
            "build_snapshot": False,
            "lucene_version": lucene,
            "minimum_wire_compatibility_version": wire,
            "minimum_index_compatibility_version": index,
        }
        return 200, {
            "name": "es-fake",
            "cluster_name": "protocol-fake",
            "cluster_uuid": "fake-cluster-uuid",
            "version": version,
            "tagline": "You Know, for Search",
        }

    def search(self, req: Request) -> Reply:
        """_search, with or without a point in time."""
        body = req.json()
        unknown = set(body) - _BODY_KEYS
        if unknown:
            reason = f"search option(s) {sorted(unknown)} not supported by the fake"
            raise EsError(400, "parsing_exception", reason)
        for name in _REJECTED_PARAMS:
            if name in req.params:
                raise EsError(
                    400, "illegal_argument_exception", f"[{name}] unsupported by the fake"
                )
        pit = body.get("pit")
        targets = self._pit_targets(req, pit) if pit else self._targets(req)
        search = parse_search(body, req.params, pit is not None)
        with self.cluster.lock:
            hits, total = execute(targets, search)
            rendered = render(hits, search, total)
        head: dict[str, Any] = {"pit_id": pit["id"]} if pit else {}
        head.update(took=1, timed_out=False, _shards=shards(len(targets)))
        return 200, orjson.dumps(head)[:-1] + b',"hits":' + rendered + b"}"

    def _targets(self, req: Request) -> list[tuple[Any, int]]:
        with self.cluster.lock:
            indices = self.cluster.resolve(req.args.get("index"), req.flag("ignore_unavailable"))
            return [(index, index.visible_seq) for index in indices]

    def _pit_targets(self, req: Request, pit: dict[str, Any]) -> list[tuple[Any, int]]:
        if "index" in req.args:
            reason = "[indices] cannot be used with point in time. Do not specify any index with"
            raise EsError(400, "action_request_validation_exception", reason + " point in time.")
        with self.cluster.lock:
            return self.cluster.use_pit(pit["id"], pit.get("keep_alive"))

    def count(self, req: Request) -> Reply:
        """_count."""
        query = req.json().get("query")
        targets = self._targets(req)
        with self.cluster.lock:
            _, total = execute(targets, Search(query=query, size=0, track_total=True))
        return 200, {"count": total, "_shards": shards(len(targets))}

    def open_pit(self, req: Request) -> Reply:
        """POST /{index}/_pit?keep_alive=..."""
        keep_alive = req.params.get("keep_alive")
        if not keep_alive:
            raise EsError(
                400, "action_request_validation_exception", "[keep_alive] is not specified"
            )
        with self.cluster.lock:
            indices = self.cluster.resolve(req.args["index"], req.flag("ignore_unavailable"))
            pit_id = self.cluster.open_pit(indices, keep_alive)
        return 200, {"id": pit_id, "_shards": shards(len(indices))}

    def close_pit(self, req: Request) -> Reply:
        """DELETE /_pit: 404 with num_freed 0 when the PIT is unknown or expired, like ES."""
        with self.cluster.lock:
            freed = self.cluster.close_pit(str(req.json().get("id")))
        return (200 if freed else 404), {"succeeded": True, "num_freed": int(freed)}

    def bulk(self, req: Request) -> Reply:
        """_bulk (NDJSON)."""
        with self.cluster.lock:
            items = self.cluster.bulk(req.body, req.args.get("index"))
            self._refresh_after(req, {v["_index"] for item in items for v in item.values()})
        errors = any("error" in v for item in items for v in item.values())
        return 200, {"errors": errors, "took": 1, "items": items}

    def index_doc(self, req: Request) -> Reply:
        """PUT/POST /{index}/_doc[/{id}] and /{index}/_create/{id}."""
        create = "_create" in req.path or req.params.get("op_type") == "create"
        with self.cluster.lock:
            reply = self.cluster.write(req.args["index"], req.args.get("id"), req.body, create)
            self._refresh_after(req, {reply["_index"]})
        return reply.pop("status"), reply

    def delete_doc(self, req: Request) -> Reply:
        """DELETE /{index}/_doc/{id}."""
        with self.cluster.lock:
            reply = self.cluster.delete_doc(req.args["index"], req.args["id"])
            self._refresh_after(req, {reply["_index"]})
        return reply.pop("status"), reply

    def get_doc(self, req: Request) -> Reply:
        """GET /{index}/_doc/{id} (real-time: sees unrefreshed writes)."""
        name, doc_id = req.args["index"], req.args["id"]
        with self.cluster.lock:
            index = self.cluster.indices.get(name)
            if index is None:
                raise missing_index(name)
            pos = index.live.get(doc_id)
            if pos is None:
                return 404, {"_index": name, "_id": doc_id, "found": False}
            head = {"_index": name, "_id": doc_id, "_version": index.versions.get(doc_id, 1)}
            head.update(_seq_no=index.seqs[pos], _primary_term=1, found=True)
            return 200, orjson.dumps(head)[:-1] + b',"_source":' + index.sources[pos] + b"}"

    def _refresh_after(self, req: Request, names: set[str]) -> None:
        if req.params.get("refresh", "false") != "false":
            self.cluster.refresh(
                [self.cluster.indices[n] for n in names if n in self.cluster.indices]
            )

    def create_index(self, req: Request) -> Reply:
        """PUT /{index}."""
        with self.cluster.lock:
            self.cluster.create_index(req.args["index"], req.json())
        return 200, {"acknowledged": True, "shards_acknowledged": True, "index": req.args["index"]}

    def index_exists(self, req: Request) -> Reply:
        """HEAD /{index}: 200 when every name exists and every pattern matches something."""
        with self.cluster.lock:
            try:
                found = self.cluster.resolve(req.args["index"])
            except EsError:
                return 404, None
        return (200 if found else 404), None

    def delete_index(self, req: Request) -> Reply:
        """DELETE /{index}."""
        with self.cluster.lock:
            for index in self.cluster.resolve(req.args["index"], req.flag("ignore_unavailable")):
                del self.cluster.indices[index.name]
        return 200, {"acknowledged": True}

    def refresh(self, req: Request) -> Reply:
        """_refresh (all indices or the named ones)."""
        with self.cluster.lock:
            indices = self.cluster.resolve(req.args.get("index"), req.flag("ignore_unavailable"))
            self.cluster.refresh(indices)
        return 200, {"_shards": shards(len(indices))}

    def health(self, req: Request) -> Reply:
        """_cluster/health: always green."""
        count = len(self.cluster.indices)
        return 200, {
            "cluster_name": "protocol-fake",
            "status": "green",
            "timed_out": False,
            "number_of_nodes": 1,
            "number_of_data_nodes": 1,
            "active_primary_shards": count,
            "active_shards": count,
            "relocating_shards": 0,
            "initializing_shards": 0,
            "unassigned_shards": 0,
        }


def parse_search(body: dict[str, Any], params: dict[str, str], pit: bool) -> Search:
    """A Search from the body (and the query-string parameters ES also accepts)."""
    size = int(body.get("size", params.get("size", 10)))
    start = int(body.get("from", params.get("from", 0)))
    sort = body.get("sort", params.get("sort"))
    specs = parse_sort(sort) if sort is not None else None
    _check_doc_sort(specs, pit)
    if pit and not any(s.field == "_shard_doc" for s in specs or []):
        specs = (specs or [SortSpec("_score", desc=True)]) + [SortSpec("_shard_doc")]
    after = body.get("search_after")
    _check_window(after, specs, start, size)
    track = _track_total(body.get("track_total_hits", params.get("track_total_hits", 10_000)))
    source = body.get("_source", params.get("_source", True))
    if source not in (True, False, "true", "false"):
        raise EsError(400, "parsing_exception", "_source filtering is not supported by the fake")
    return Search(
        query=body.get("query"),
        specs=specs,
        size=size,
        start=start,
        after=after,
        track_total=track,
        source=source in (True, "true"),
        track_scores=bool(body.get("track_scores")),
    )


def _check_window(after: Any, specs: list[SortSpec] | None, start: int, size: int) -> None:
    if after is not None and not specs:
        raise EsError(400, "illegal_argument_exception", "[search_after] requires a [sort]")
    if after is not None and start > 0:
        reason = "[from] parameter must be set to 0 when [search_after] is used"
        raise EsError(400, "illegal_argument_exception", reason)
    if start + size > 10_000:
        reason = "Result window is too large, from + size must be less than or equal to: "
        raise EsError(
            400, "illegal_argument_exception", reason + f"[10000] but was [{start + size}]."
        )


def _check_doc_sort(specs: list[SortSpec] | None, pit: bool) -> None:
    if not pit and any(s.field == "_shard_doc" for s in specs or []):
        reason = "[_shard_doc] sort field cannot be used without [point in time]"
        raise EsError(400, "illegal_argument_exception", reason)


def _track_total(value: Any) -> bool | int:
    if value in (True, "true"):
        return True
    if value in (False, "false"):
        return False
    return int(value)
