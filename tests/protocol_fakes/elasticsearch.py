"""An Elasticsearch-compatible HTTP test server that the real elasticsearch-py 8.x client uses.

    with ElasticsearchFake() as server:
        es = Elasticsearch(server.url)

Endpoints: GET/HEAD / (info), _search (with or without a point in time), _count,
POST /{index}/_pit, DELETE /_pit, _bulk (index, create, delete), PUT/POST /{index}/_doc,
/{index}/_create/{id}, GET/DELETE /{index}/_doc/{id}, PUT/HEAD/DELETE /{index}, _refresh,
GET /_cluster/health. Query DSL: match_all, match_none, range, term, terms, exists, bool.

Semantics chosen (as in real ES 8 where known):
- Strings that look like ISO-8601 dates are dynamically mapped as `date` (millisecond
  resolution: nanosecond digits are kept in _source but truncated for range and sort);
  epoch-millis numbers compare as instants against ISO range bounds. Other strings are
  keywords (exact match; "x.keyword" reads "x").
- Sort values of a date field: epoch milliseconds (int) by default; with a `format` of
  strict_date_optional_time(_nanos) (or date_optional_time, strict_date_time, date_time)
  the string "2026-12-01T00:00:00.000Z" (UTC, exactly 3 fraction digits, as ES prints a
  millisecond `date` field); with epoch_millis the digits as a string. search_after accepts
  any of these. A missing numeric/date value sorts as Long.MAX_VALUE/MIN_VALUE (returned as
  such, or null when a date format is given); a missing keyword as null.
- _shard_doc and _doc are a global write sequence number. A search with a PIT gets an implicit
  trailing {"_shard_doc": "asc"} (so hits carry one more sort value), as in ES.
- Documents become visible on refresh (API, ?refresh=true|wait_for, `server.refresh()`), or
  at once with auto_refresh=True. A PIT sees what was visible when it was opened.
- Errors are ES-shaped: 404 index_not_found_exception (a concrete index; a pattern matching
  nothing gives no hits), 400 parsing_exception naming an unknown query clause or search
  option, 404 search_context_missing_exception for an unknown/expired PIT; closing an
  unknown PIT answers 404 {"succeeded": true, "num_freed": 0} (the client raises NotFoundError).

Limitations: one shard per index, no aliases, analysis, relevance scoring (hits score 1.0, or
0.0 for filter-only bools), aggregations, _source filtering, scroll, `q=`, bulk `update`,
date math ("now-1d"), range time_zone or date_nanos resolution. A field's type is per index,
from indices.create mappings or the first value seen; a value that does not fit it (e.g.
"abc" in a date field) counts as missing instead of rejecting the document. URL parameters
other than the ones used (size, from, sort, refresh, ignore_unavailable, keep_alive, ...)
are ignored, filter_path included. Fields not named in explicit mappings are extracted on
first use by parsing every stored _source once; map the time field to avoid that pause.
"""

from __future__ import annotations

import base64
import re
import threading
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import orjson

from .es_api import Api, Request
from .es_cluster import Cluster
from .es_http import Server
from .es_query import EsError

_ROUTES: list[tuple[str, tuple[str, ...], str]] = [
    ("GET HEAD", (), "info"),
    ("GET POST", ("_search",), "search"),
    ("GET POST", ("{index}", "_search"), "search"),
    ("GET POST", ("_count",), "count"),
    ("GET POST", ("{index}", "_count"), "count"),
    ("POST", ("{index}", "_pit"), "open_pit"),
    ("DELETE", ("_pit",), "close_pit"),
    ("POST PUT", ("_bulk",), "bulk"),
    ("POST PUT", ("{index}", "_bulk"), "bulk"),
    ("GET POST", ("_refresh",), "refresh"),
    ("GET POST", ("{index}", "_refresh"), "refresh"),
    ("GET", ("_cluster", "health"), "health"),
    ("POST", ("{index}", "_doc"), "index_doc"),
    ("PUT POST", ("{index}", "_doc", "{id}"), "index_doc"),
    ("PUT POST", ("{index}", "_create", "{id}"), "index_doc"),
    ("GET", ("{index}", "_doc", "{id}"), "get_doc"),
    ("DELETE", ("{index}", "_doc", "{id}"), "delete_doc"),
    ("PUT", ("{index}",), "create_index"),
    ("HEAD", ("{index}",), "index_exists"),
    ("DELETE", ("{index}",), "delete_index"),
]
_COMPAT = re.compile(r"compatible-with=(\d+)")
_JSON_TYPES = ("application/json", "application/vnd.elasticsearch+", "application/x-ndjson")


def _match(pattern: tuple[str, ...], parts: list[str]) -> dict[str, str] | None:
    if len(pattern) != len(parts):
        return None
    args = {}
    for want, part in zip(pattern, parts, strict=True):
        if want.startswith("{"):
            if want == "{index}" and part.startswith("_"):
                return None
            args[want[1:-1]] = part
        elif want != part:
            return None
    return args


class ElasticsearchFake:
    """An in-process Elasticsearch test server on 127.0.0.1 (a free port).

    version: what GET / reports ("8.15.0", or e.g. "9.1.0"). auto_refresh: writes are
    visible at once. api_key (encoded string or (id, key)) / basic_auth ((user, password)):
    when set, requests need a matching Authorization header or get 401 security_exception.
    """

    def __init__(
        self,
        version: str = "8.15.0",
        auto_refresh: bool = False,
        api_key: str | tuple[str, str] | None = None,
        basic_auth: tuple[str, str] | None = None,
    ) -> None:
        self.version = version
        self.cluster = Cluster(auto_refresh)
        self._api = Api(self.cluster, version)
        self._auth = _expected_auth(api_key, basic_auth)
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    def start(self) -> ElasticsearchFake:
        """Listen on a free port; `url` is set."""
        self._server = Server(self)
        port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every connection (promptly)."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.drop_connections()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> ElasticsearchFake:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def index_docs(
        self,
        index: str,
        docs: list[dict[str, Any]],
        ids: list[str] | None = None,
        visible: bool = True,
    ) -> list[str]:
        """Index documents directly (no HTTP); visible=True refreshes the index. Their ids."""
        if ids is not None and len(ids) != len(docs):
            raise ValueError("ids and docs differ in length")
        out = []
        with self.cluster.lock:
            for i, doc in enumerate(docs):
                doc_id = None if ids is None else str(ids[i])
                raw = memoryview(orjson.dumps(doc)).tobytes()  # orjson's buffer is ~4 KiB
                reply = self.cluster.write(index, doc_id, raw, False, doc)
                out.append(reply["_id"])
            if visible and index in self.cluster.indices:
                self.cluster.refresh([self.cluster.indices[index]])
        return out

    def refresh(self, index: str | None = None) -> None:
        """Make all writes (to `index`, or everywhere) visible."""
        with self.cluster.lock:
            self.cluster.refresh(self.cluster.resolve(index))

    def count(self, index: str) -> int:
        """Documents of an index visible to a search now."""
        with self.cluster.lock:
            return sum(ix.count(ix.visible_seq) for ix in self.cluster.resolve(index))

    def expire_pits(self) -> None:
        """Expire every open point in time (as if keep_alive had passed)."""
        with self.cluster.lock:
            self.cluster.expire_pits()

    def check_headers(self, headers: Any) -> str | None:
        """Authorization and media types; the compatible-with version to answer with."""
        if self._auth and headers.get("Authorization") not in self._auth:
            reason = "missing authentication credentials for REST request"
            if headers.get("Authorization"):
                reason = "unable to authenticate with provided credentials"
            raise EsError(401, "security_exception", reason)
        compat = None
        for name in ("Accept", "Content-Type"):
            found = _COMPAT.search(headers.get(name) or "")
            if found:
                compat = self._check_compat(name, found[1], headers.get(name))
        kind = headers.get("Content-Type")
        if kind and not kind.startswith(_JSON_TYPES):
            raise EsError(
                406, "media_type_header_exception", f"Content-Type header [{kind}] is not supported"
            )
        return compat

    def _check_compat(self, header: str, wanted: str, value: str) -> str:
        major = int(self.version.split(".")[0])
        if int(wanted) not in (major, major - 1):
            reason = f"{header} version must be either version {major} or {major - 1}, "
            reason += f"but found {wanted}. {header}={value}"
            raise EsError(400, "media_type_header_exception", reason)
        return wanted

    def handle(self, method: str, target: str, body: bytes) -> tuple[int, Any]:
        """Route one request to its endpoint."""
        split = urlsplit(target)
        parts = [unquote(p) for p in split.path.split("/") if p]
        params = dict(parse_qsl(split.query, keep_blank_values=True))
        for methods, pattern, name in _ROUTES:
            args = _match(pattern, parts)
            if args is not None and method in methods.split():
                request = Request(method, split.path, params, body, args)
                return getattr(self._api, name)(request)
        reason = f"no handler found for uri [{split.path}] and method [{method}]"
        raise EsError(400, "illegal_argument_exception", reason)


def _expected_auth(api_key: Any, basic_auth: tuple[str, str] | None) -> set[str]:
    expected = set()
    if isinstance(api_key, (tuple, list)):
        api_key = base64.b64encode(f"{api_key[0]}:{api_key[1]}".encode()).decode()
    if api_key:
        expected.add(f"ApiKey {api_key}")
    if basic_auth:
        expected.add("Basic " + base64.b64encode(":".join(basic_auth).encode()).decode())
    return expected


__all__ = ["ElasticsearchFake"]
