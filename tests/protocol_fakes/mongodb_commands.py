"""MongoDB command handlers for the protocol fake: a command document in, a BSON reply out."""

from __future__ import annotations

import datetime
import itertools
import logging
import random
import threading
from collections.abc import Mapping
from typing import Any

import bson
from bson.int64 import Int64

from tests.protocol_fakes.mongodb_store import Collection, Store, prepare, project
from tests.protocol_fakes.mongodb_wire import (
    MAX_BSON_SIZE,
    MAX_MESSAGE_SIZE,
    batch_end,
    cursor_reply,
)

logger = logging.getLogger(__name__)

MAX_WIRE_VERSION = 21  # MongoDB 7.0
DEFAULT_FIRST_BATCH = 101


class CommandError(Exception):
    """A command failure sent back as {ok: 0, errmsg, code}."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


# command name -> Commands method
_HANDLERS = {
    **{"hello": "hello", "isMaster": "hello", "ismaster": "hello"},
    **{"ping": "ok", "endSessions": "ok", "buildInfo": "build_info", "buildinfo": "build_info"},
    **{"find": "find", "getMore": "get_more", "killCursors": "kill_cursors"},
    **{"insert": "insert", "delete": "delete", "count": "count", "aggregate": "aggregate"},
    **{"create": "create", "createIndexes": "create_indexes", "listIndexes": "list_indexes"},
    **{"listCollections": "list_collections", "listDatabases": "list_databases"},
    **{"drop": "drop", "dropDatabase": "drop_database"},
}


class _Cursor:
    def __init__(self, ns: str, rows: list[bytes]) -> None:
        self.ns, self.rows, self.pos = ns, rows, 0

    def take(self, count: int) -> list[bytes]:
        """The next batch: at most count rows (all when count <= 0), under the byte limit."""
        end = len(self.rows) if count <= 0 else min(len(self.rows), self.pos + count)
        stop = batch_end(self.rows, self.pos, end) if end > self.pos else self.pos
        batch, self.pos = self.rows[self.pos : stop], stop
        return batch

    @property
    def done(self) -> bool:
        return self.pos >= len(self.rows)


def _dicts(items: list[Any]) -> list[dict[str, Any]]:
    return [bson.decode(i) if isinstance(i, (bytes, bytearray)) else i for i in items]


class Commands:
    """Runs commands against a Store and keeps the server's open cursors."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.cursors: dict[int, _Cursor] = {}
        self._lock = threading.Lock()
        self._connection_ids = itertools.count(1)

    def run(self, cmd: dict[str, Any]) -> bytes:
        """The reply body for one command; failures become ok: 0 replies, never exceptions."""
        name = next(iter(cmd), "")
        try:
            if name not in _HANDLERS:
                raise CommandError(59, f"no such command: '{name}'")
            reply = getattr(self, _HANDLERS[name])(cmd)
        except CommandError as exc:
            reply = {"ok": 0.0, "errmsg": str(exc), "code": exc.code}
        except Exception as exc:  # a bad query must not kill the connection
            logger.debug("command %r failed", name, exc_info=True)
            code = getattr(exc, "code", None)
            reply = {"ok": 0.0, "errmsg": f"{type(exc).__name__}: {exc}", "code": code or 8}
        return reply if isinstance(reply, bytes) else bson.encode(reply)

    def hello(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """Standalone server description; no topologyVersion, so clients poll, never stream."""
        return {
            "ismaster": True,
            "isWritablePrimary": True,
            "helloOk": True,
            "maxBsonObjectSize": MAX_BSON_SIZE,
            "maxMessageSizeBytes": MAX_MESSAGE_SIZE,
            "maxWriteBatchSize": 100_000,
            "localTime": datetime.datetime.now(datetime.timezone.utc),
            "logicalSessionTimeoutMinutes": 30,
            "connectionId": next(self._connection_ids),
            "minWireVersion": 0,
            "maxWireVersion": MAX_WIRE_VERSION,
            "readOnly": False,
            "ok": 1.0,
        }

    def ok(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """ping, endSessions: nothing to do."""
        return {"ok": 1.0}

    def build_info(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """Version information matching MAX_WIRE_VERSION."""
        return {
            "version": "7.0.0",
            "versionArray": [7, 0, 0, 0],
            "maxBsonObjectSize": MAX_BSON_SIZE,
            "ok": 1.0,
        }

    def open_cursor(self, ns: str, rows: list[bytes], size: int | None, single: bool) -> bytes:
        """Register a cursor over rows and reply with its first batch."""
        cursor = _Cursor(ns, rows)
        batch = cursor.take(DEFAULT_FIRST_BATCH if size is None else size) if size != 0 else []
        cursor_id = 0
        if not (single or cursor.done):
            with self._lock:
                cursor_id = random.getrandbits(62) + 1
                self.cursors[cursor_id] = cursor
        return cursor_reply(ns, cursor_id, batch, first=True)

    def _collection(self, cmd: dict[str, Any], create: bool = False) -> Collection | None:
        """The collection a command names (its first value) in cmd["$db"]."""
        return self.store.get(cmd["$db"], next(iter(cmd.values())), create)

    def find(self, cmd: dict[str, Any]) -> bytes:
        """find with filter, sort, skip, limit, batchSize, projection, singleBatch."""
        rows, fast = [], True
        skip, limit = int(cmd.get("skip", 0)), abs(int(cmd.get("limit", 0)))
        with self.store.lock:
            if coll := self._collection(cmd):
                rows, fast = coll.find(cmd.get("filter") or {}, cmd.get("sort"), skip, limit)
            self.store.stats["fast" if fast else "mongomock"] += 1
        if cmd.get("projection") and rows:
            rows = project(rows, cmd["projection"])
        ns = f"{cmd['$db']}.{cmd['find']}"
        return self.open_cursor(ns, rows, cmd.get("batchSize"), cmd.get("singleBatch", False))

    def get_more(self, cmd: dict[str, Any]) -> bytes:
        """The next batch of an open cursor; the cursor closes once exhausted."""
        cursor_id = int(cmd["getMore"])
        with self._lock:
            cursor = self.cursors.get(cursor_id)
        if cursor is None:
            raise CommandError(43, f"cursor id {cursor_id} not found")
        batch = cursor.take(int(cmd.get("batchSize", 0)))
        if cursor.done:
            with self._lock:
                self.cursors.pop(cursor_id, None)
            cursor_id = 0
        return cursor_reply(cursor.ns, cursor_id, batch, first=False)

    def kill_cursors(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """Forget the listed cursors."""
        ids = [int(i) for i in cmd.get("cursors", [])]
        with self._lock:
            killed = [Int64(i) for i in ids if self.cursors.pop(i, None)]
        missing = [Int64(i) for i in ids if Int64(i) not in killed]
        return {
            **{"cursorsKilled": killed, "cursorsNotFound": missing},
            **{"cursorsAlive": [], "cursorsUnknown": [], "ok": 1.0},
        }

    def insert(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """Insert documents; duplicate _id values become writeErrors (code 11000)."""
        items = [prepare(doc) for doc in cmd.get("documents", [])]
        ordered = cmd.get("ordered", True)
        with self.store.lock:
            errors = self._collection(cmd, create=True).insert(items, ordered=ordered)
        if not errors:
            return {"n": len(items), "ok": 1.0}
        ns = f"{cmd['$db']}.{cmd['insert']}"
        message = "E11000 duplicate key error collection: {} index: _id_ dup key: {{ _id: {!r} }}"
        write_errors = [
            {"index": i, "code": 11000, "errmsg": message.format(ns, v)} for i, v in errors
        ]
        n = errors[0][0] if ordered else len(items) - len(errors)
        return {"n": n, "writeErrors": write_errors, "ok": 1.0}

    def delete(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """Delete by filter ({q, limit: 0 or 1} per statement), matched through mongomock."""
        removed = 0
        with self.store.lock:
            coll = self._collection(cmd)
            for spec in _dicts(cmd.get("deletes", [])) if coll else []:
                found = coll.mirror().find(spec.get("q") or {}, {"_id": 1})
                removed += coll.remove([d["_id"] for d in found.limit(int(spec.get("limit", 0)))])
        return {"n": removed, "ok": 1.0}

    def count(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """The legacy count command (estimated_document_count)."""
        skip, limit = int(cmd.get("skip", 0)), int(cmd.get("limit", 0))
        with self.store.lock:
            coll = self._collection(cmd)
            n = coll.count(cmd.get("query") or {}, skip, limit) if coll else 0
        return {"n": n, "ok": 1.0}

    def aggregate(self, cmd: dict[str, Any]) -> bytes:
        """count_documents' pipeline fast (a bisect count), anything else via mongomock."""
        pipeline = cmd.get("pipeline", [])
        with self.store.lock:
            coll = self._collection(cmd)
            if coll is None:
                rows = []
            elif (args := _count_args(pipeline)) is not None:
                n = coll.count(*args)
                rows = [bson.encode({"_id": 1, "n": n})] if n else []
            else:
                rows = [bson.encode(d) for d in coll.mirror().aggregate(pipeline)]
        ns, size = f"{cmd['$db']}.{cmd['aggregate']}", cmd.get("cursor", {}).get("batchSize")
        return self.open_cursor(ns, rows, size, False)

    def create(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """Create an empty collection."""
        with self.store.lock:
            if self._collection(cmd):
                raise CommandError(48, f"Collection {cmd['$db']}.{cmd['create']} already exists.")
            self._collection(cmd, create=True)
        return {"ok": 1.0}

    def create_indexes(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """Record index specs (listIndexes shows them); they change no query behaviour."""
        with self.store.lock:
            created = self._collection(cmd) is None
            coll = self._collection(cmd, create=True)
            before, names = len(coll.indexes), {index["name"] for index in coll.indexes}
            coll.indexes += [{"v": 2, **i} for i in cmd["indexes"] if i["name"] not in names]
            after = len(coll.indexes)
        counts = {"numIndexesBefore": before, "numIndexesAfter": after}
        return {**counts, "createdCollectionAutomatically": created, "ok": 1.0}

    def list_indexes(self, cmd: dict[str, Any]) -> bytes:
        """The recorded indexes of one collection."""
        ns = f"{cmd['$db']}.{cmd['listIndexes']}"
        with self.store.lock:
            coll = self._collection(cmd)
        if coll is None:
            raise CommandError(26, f"ns does not exist: {ns}")
        return self.open_cursor(ns, [bson.encode(i) for i in coll.indexes], None, False)

    def list_collections(self, cmd: dict[str, Any]) -> bytes:
        """Collections of one database; a {name: ...} filter is honoured."""
        db, wanted = cmd["$db"], (cmd.get("filter") or {}).get("name")
        with self.store.lock:
            names = [n for n in self.store.names(db) if wanted in (None, n)]
        info = {"type": "collection", "options": {}, "info": {"readOnly": False}}
        rows = [bson.encode({"name": n, **info}) for n in names]
        return self.open_cursor(f"{db}.$cmd.listCollections", rows, None, False)

    def list_databases(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """Databases holding collections."""
        with self.store.lock:
            names = self.store.databases()
        dbs = [{"name": n, "sizeOnDisk": 0, "empty": False} for n in names]
        return {"databases": dbs, "totalSize": 0, "ok": 1.0}

    def drop(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """Drop a collection (code 26 when it does not exist, which pymongo ignores)."""
        with self.store.lock:
            if not self.store.drop(cmd["$db"], cmd["drop"]):
                raise CommandError(26, "ns not found")
        return {"ns": f"{cmd['$db']}.{cmd['drop']}", "nIndexesWas": 1, "ok": 1.0}

    def drop_database(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """Drop every collection of a database."""
        with self.store.lock:
            self.store.drop(cmd["$db"])
        return {"dropped": cmd["$db"], "ok": 1.0}


def _count_args(pipeline: list[Mapping[str, Any]]) -> tuple[dict[str, Any], int, int] | None:
    """(filter, skip, limit) when pipeline is count_documents' shape, else None."""
    stages = [(next(iter(s), None), s) for s in pipeline if len(s) == 1]
    if len(stages) != len(pipeline) or not stages or stages[-1][0] != "$group":
        return None
    if stages[-1][1]["$group"] != {"_id": 1, "n": {"$sum": 1}}:
        return None
    args: dict[str, Any] = {"$match": {}, "$skip": 0, "$limit": 0}
    for op, stage in stages[:-1]:
        if op not in args:
            return None
        args[op] = stage[op]
    return args["$match"], int(args["$skip"]), int(args["$limit"])
