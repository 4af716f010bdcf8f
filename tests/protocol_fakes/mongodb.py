"""A MongoDB wire-protocol test server that real pymongo clients talk to over TCP.

    with MongoFake() as server:
        server.insert_many("db", "metrics", docs)
        client = pymongo.MongoClient(server.uri)

It speaks OP_MSG (and OP_QUERY for old clients' handshake), one thread per connection, and
keeps documents in memory (see mongodb_store for the fast sorted path and mongomock fallback).
"""

from __future__ import annotations

import logging
import socket
import socketserver
import struct
import threading
from collections.abc import Iterable, Mapping
from typing import Any

import bson

from tests.protocol_fakes.mongodb_commands import Commands
from tests.protocol_fakes.mongodb_store import Collection, Store, prepare
from tests.protocol_fakes.mongodb_wire import (
    MORE_TO_COME,
    OP_MSG,
    OP_QUERY,
    OP_REPLY,
    frame,
    parse_op_msg,
    parse_op_query,
    read_message,
)

logger = logging.getLogger(__name__)


def respond(commands: Commands, opcode: int, request_id: int, data: bytes) -> list[bytes]:
    """The reply message to one request as [header, body] (empty when the client expects none)."""
    if opcode == OP_MSG:
        flags, command = parse_op_msg(data)
        body = commands.run(command)
        return [] if flags & MORE_TO_COME else frame(OP_MSG, request_id, b"\0" * 5, body)
    if opcode == OP_QUERY:
        body = commands.run(parse_op_query(data))
        return frame(OP_REPLY, request_id, struct.pack("<iqii", 0, 0, 0, 1), body)
    raise ValueError(f"unsupported opcode {opcode}")


def _hang_up(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class _Handler(socketserver.BaseRequestHandler):
    """Serves one client connection until it closes or the server stops."""

    def handle(self) -> None:
        fake: MongoFake = self.server.fake  # type: ignore[attr-defined]
        sock: socket.socket = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        fake._track(sock, True)
        try:
            self._serve(fake, sock)
        except Exception:  # a broken or malformed peer ends its connection, not the server
            logger.debug("connection ended", exc_info=True)
        finally:
            fake._track(sock, False)

    def _serve(self, fake: MongoFake, sock: socket.socket) -> None:
        while (message := read_message(sock)) is not None:
            for part in respond(fake.commands, *message):
                sock.sendall(part)


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = False
    block_on_close = True  # server_close joins the connection threads


class MongoFake:
    """In-memory MongoDB on 127.0.0.1 for tests: real wire protocol, a free port."""

    def __init__(self, sorted_field: str = "timestamp", fast_path: bool = True) -> None:
        self.store = Store(sorted_field, fast_path)
        self.commands = Commands(self.store)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._sockets: set[socket.socket] = set()
        self._sockets_lock = threading.Lock()
        self._closing = False

    @property
    def port(self) -> int:
        """The listening port (after start)."""
        assert self._server is not None, "server not started"
        return self._server.server_address[1]

    @property
    def uri(self) -> str:
        """A connection string for pymongo.MongoClient."""
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    @property
    def stats(self) -> dict[str, int]:
        """How many finds the fast path and the mongomock path answered."""
        return dict(self.store.stats)

    def start(self) -> MongoFake:
        """Listen on a free port and serve in a background thread."""
        self._closing = False
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the listener and every connection; returns once all threads have ended."""
        if self._server is None:
            return
        self._server.shutdown()
        with self._sockets_lock:
            self._closing = True
            for sock in self._sockets:
                _hang_up(sock)
        self._server.server_close()
        assert self._thread is not None
        self._thread.join()
        self._server = self._thread = None

    def __enter__(self) -> MongoFake:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _track(self, sock: socket.socket, open_: bool) -> None:
        with self._sockets_lock:
            (self._sockets.add if open_ else self._sockets.discard)(sock)
            if open_ and self._closing:  # accepted just before stop(): end it too
                _hang_up(sock)

    def _collection(self, db: str, coll: str) -> Collection:
        return self.store.get(db, coll, create=True)  # type: ignore[return-value]

    def insert_many(
        self, db: str, coll: str, docs: Iterable[Mapping[str, Any]], visible: bool = True
    ) -> int:
        """Insert directly (no wire); visible=False holds them back until release(db, coll).

        Documents without _id get an ObjectId (the given mappings are not changed); duplicate
        _id values are skipped and then reported with ValueError.
        """
        items = [prepare(doc) for doc in docs]
        with self.store.lock:
            errors = self._collection(db, coll).insert(items, ordered=False, hold=not visible)
        if errors:
            raise ValueError(f"duplicate _id values: {[v for _, v in errors][:5]}")
        return len(items)

    def hold(self, db: str, coll: str) -> None:
        """Hold back every later insert (wire ones too) until release(db, coll)."""
        with self.store.lock:
            self._collection(db, coll).held = True

    def release(self, db: str, coll: str) -> int:
        """Make held-back documents visible; returns how many."""
        with self.store.lock:
            return self._collection(db, coll).release()

    def count(self, db: str, coll: str) -> int:
        """Visible documents in a collection."""
        with self.store.lock:
            found = self.store.get(db, coll)
            return len(found.natural) if found else 0

    def docs(self, db: str, coll: str) -> list[dict[str, Any]]:
        """Decoded copies of the visible documents, in insertion order."""
        with self.store.lock:
            found = self.store.get(db, coll)
            rows = list(found.natural) if found else []
        return [bson.decode(raw) for raw in rows]
