"""HTTP plumbing of the Elasticsearch protocol fake: a threaded HTTP/1.1 keep-alive server.

The server's `fake` answers `check_headers(headers)` (the compatible-with version to reply
with, or an EsError) and `handle(method, target, body)` ((status, JSON-able or bytes)).
Every response carries `X-Elastic-Product: Elasticsearch`; per-request logging is debug level.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

from .es_query import EsError

logger = logging.getLogger(__name__)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ElasticsearchFake"
    disable_nagle_algorithm = True
    server: Server

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_HEAD(self) -> None:
        self._serve("HEAD")

    def log_message(self, format: str, *args: Any) -> None:
        """Per-request logging stays quiet (debug level)."""
        logger.debug(format, *args)

    def _serve(self, method: str) -> None:
        compat = None
        try:
            body = self._read_body()
            compat = self.server.fake.check_headers(self.headers)
            status, payload = self.server.fake.handle(method, self.path, body)
        except EsError as error:
            status, payload = error.status, error.body()
        except Exception as error:  # a bug in the fake: answer 500 and log it
            logger.exception("ElasticsearchFake failed on %s %s", method, self.path)
            status, payload = 500, EsError(500, "exception", repr(error)).body()
        self._reply(method, status, payload, compat)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0], 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _reply(self, method: str, status: int, payload: Any, compat: str | None) -> None:
        data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        kind = "application/json"
        if compat:
            kind = f"application/vnd.elasticsearch+json;compatible-with={compat}"
        self.send_response(status)
        self.send_header("X-Elastic-Product", "Elasticsearch")
        self.send_header("Content-Type", kind)
        if status == 401:
            self.send_header("WWW-Authenticate", 'Basic realm="security", charset="UTF-8"')
            self.send_header("WWW-Authenticate", "ApiKey")
        head = method == "HEAD" or payload is None
        self.send_header("Content-Length", "0" if head else str(len(data)))
        self.end_headers()
        if not head:
            self.wfile.write(data)


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: Any) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.fake = fake
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection reset or closed by the client (or by stop()): not worth a traceback."""
        logger.debug("connection from %s ended with an error", client_address, exc_info=True)

    def drop_connections(self, timeout: float = 2.0) -> None:
        """Shut down open keep-alive connections and wait for their threads to close them."""
        with self.connections_lock:
            for connection in self.connections:
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        deadline = time.monotonic() + timeout
        while self.connections and time.monotonic() < deadline:
            time.sleep(0.005)
