"""MongoDB wire format for the protocol fake: OP_MSG/OP_QUERY parsing and reply encoding.

Cursor replies are built by concatenating stored raw BSON documents, so serving a batch costs
one join, not an encode.
"""

from __future__ import annotations

import itertools
import socket
import struct
from bisect import bisect_right
from typing import Any

import bson
from bson.codec_options import CodecOptions, DatetimeConversion

# Dates past year 9999 in a command (a client's keyset after such a document) decode
# as DatetimeMS, as a real server takes them, instead of failing the connection.
COMMAND_OPTS = CodecOptions(datetime_conversion=DatetimeConversion.DATETIME_AUTO)

MAX_BSON_SIZE = 16 * 1024 * 1024
MAX_MESSAGE_SIZE = 48_000_000
MAX_BATCH_BYTES = MAX_BSON_SIZE - 64 * 1024  # room for the reply's own fields
OP_REPLY, OP_QUERY, OP_MSG = 1, 2004, 2013
_HEADER = struct.Struct("<iiii")
_I32 = struct.Struct("<i")
MORE_TO_COME = 2
_request_ids = itertools.count(1)
_INT64 = struct.Struct("<q")
_DOUBLE_ONE = struct.pack("<d", 1.0)
_PREFIXES: list[bytes] = []


def recv_exact(sock: socket.socket, size: int) -> bytes | None:
    """Exactly size bytes from sock, None if the peer closes first."""
    buf = bytearray(size)
    view, got = memoryview(buf), 0
    while got < size:
        n = sock.recv_into(view[got:])
        if n == 0:
            return None
        got += n
    return bytes(buf)


def read_message(sock: socket.socket) -> tuple[int, int, bytes] | None:
    """(opCode, requestID, body) of the next message, None once the peer has closed."""
    header = recv_exact(sock, 16)
    if header is None:
        return None
    length, request_id, _, opcode = _HEADER.unpack(header)
    data = recv_exact(sock, length - 16)
    return None if data is None else (opcode, request_id, data)


def _sequence(data: bytes, start: int, stop: int) -> tuple[str, list[bytes]]:
    """A kind-1 section: identifier plus raw documents."""
    nul = data.index(b"\x00", start + 4)
    docs, pos = [], nul + 1
    while pos < stop:
        size = _I32.unpack_from(data, pos)[0]
        docs.append(data[pos : pos + size])
        pos += size
    return data[start + 4 : nul].decode(), docs


def parse_op_msg(data: bytes) -> tuple[int, dict[str, Any]]:
    """(flagBits, command) of an OP_MSG body; document sequences become lists of raw BSON."""
    flags = struct.unpack_from("<I", data)[0]
    end = len(data) - 4 if flags & 1 else len(data)
    pos, command, sequences = 4, {}, {}
    while pos < end:
        kind, size = data[pos], _I32.unpack_from(data, pos + 1)[0]
        if kind == 0:
            command = bson.decode(data[pos + 1 : pos + 1 + size], COMMAND_OPTS)
        else:
            name, docs = _sequence(data, pos + 1, pos + 1 + size)
            sequences[name] = docs
        pos += 1 + size
    return flags, {**command, **sequences}


def parse_op_query(data: bytes) -> dict[str, Any]:
    """The command of an OP_QUERY on <db>.$cmd (only old clients' handshakes use it)."""
    nul = data.index(b"\x00", 4)
    pos = nul + 9
    query = bson.decode(data[pos : pos + _I32.unpack_from(data, pos)[0]])
    command = query.get("$query", query)
    return {**command, "$db": data[4:nul].decode().split(".", 1)[0]}


def frame(opcode: int, response_to: int, prefix: bytes, body: bytes) -> list[bytes]:
    """[header + prefix, body] of a reply message (two parts: the body is not copied)."""
    size = 16 + len(prefix) + len(body)
    return [_HEADER.pack(size, next(_request_ids), response_to, opcode) + prefix, body]


def cursor_reply(ns: str, cursor_id: int, rows: list[bytes], first: bool) -> bytes:
    """{cursor: {firstBatch|nextBatch: rows, id, ns}, ok: 1} built with one join of raw rows."""
    for i in range(len(_PREFIXES), len(rows)):
        _PREFIXES.append(b"\x03" + str(i).encode() + b"\x00")
    prefixes = _PREFIXES[: len(rows)]
    array_size = 5 + sum(map(len, prefixes)) + sum(map(len, rows))
    field = b"\x04firstBatch\x00" if first else b"\x04nextBatch\x00"
    name = ns.encode()
    tail = b"\x12id\x00" + _INT64.pack(cursor_id) + b"\x02ns\x00" + _I32.pack(len(name) + 1)
    tail += name + b"\x00\x00"  # ends the ns string, then the cursor document
    cursor_size = 4 + len(field) + array_size + len(tail)
    head = [_I32.pack(cursor_size + 25), b"\x03cursor\x00", _I32.pack(cursor_size), field]
    rest = [b"\x00", tail, b"\x01ok\x00", _DOUBLE_ONE, b"\x00"]
    elements = itertools.chain.from_iterable(zip(prefixes, rows, strict=True))
    return b"".join(itertools.chain(head, [_I32.pack(array_size)], elements, rest))


def batch_end(rows: list[bytes], start: int, end: int) -> int:
    """End index of a batch from start: at most end, at least one row, under MAX_BATCH_BYTES."""
    sizes = list(itertools.accumulate(map(len, rows[start:end])))
    return start + max(1, bisect_right(sizes, MAX_BATCH_BYTES)) if sizes else start
