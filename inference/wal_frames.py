"""The write-ahead log's frames (inference/wal.py): encoding a /feed batch, and reading
a segment back, stopping at a torn or corrupt frame with a warning.

    frame   = magic "TWAL" | version u16 | payload length u32 | CRC32 of payload u32
    payload = received_at f64 | n u32 | metrics u32 | text bytes u32 | name lengths
              u32[n] (characters) | names (utf-8, joined) | seconds i64[n]
              | states i8[n] | values f64[n, metrics]
"""

from __future__ import annotations

import logging
import struct
import zlib
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import BinaryIO

import numpy as np

from contract_parse import Batch

logger = logging.getLogger(__name__)

MAGIC, VERSION = b"TWAL", 1
_FRAME = struct.Struct("<4sHII")  # magic, version, payload length, CRC32 of payload
_HEAD = struct.Struct("<dIII")  # received_at, n, metrics, text bytes
MAX_PAYLOAD = 1 << 30  # a longer length field is corruption, not a frame


class CorruptFrame(ValueError):
    """A frame that cannot be decoded (torn by a crash, or damaged)."""


def encode(batch: Batch, received_at: float) -> bytes:
    """One frame holding batch; numpy tobytes does the per-record work."""
    names = batch.names
    text = "".join(names).encode("utf-8", "surrogatepass")
    values = np.ascontiguousarray(batch.values, dtype="<f8")
    metrics = values.shape[1] if values.ndim == 2 else 0
    payload = b"".join(
        (
            _HEAD.pack(received_at, len(names), metrics, len(text)),
            np.fromiter(map(len, names), dtype="<u4", count=len(names)).tobytes(),
            text,
            np.ascontiguousarray(batch.seconds, dtype="<i8").tobytes(),
            np.ascontiguousarray(batch.states, dtype="i1").tobytes(),
            values.tobytes(),
        )
    )
    return _FRAME.pack(MAGIC, VERSION, len(payload), zlib.crc32(payload)) + payload


def decode(payload: bytes) -> tuple[Batch, float]:
    """The batch and received_at of a payload whose CRC matched; CorruptFrame if it does
    not add up (such a frame was not written by this version)."""
    if len(payload) < _HEAD.size:
        raise CorruptFrame(f"payload of {len(payload)} bytes is shorter than its header")
    received_at, n, metrics, text_bytes = _HEAD.unpack_from(payload)
    expected = _HEAD.size + n * (4 + 8 + 1 + 8 * metrics) + text_bytes
    if expected != len(payload):
        raise CorruptFrame(f"payload has {len(payload)} bytes, its header says {expected}")
    offset = _HEAD.size
    lengths = np.frombuffer(payload, "<u4", n, offset)
    offset += 4 * n
    try:
        text = payload[offset : offset + text_bytes].decode("utf-8", "surrogatepass")
    except UnicodeDecodeError as exc:
        raise CorruptFrame(f"server names are not utf-8: {exc}") from None
    if int(lengths.sum(dtype=np.int64)) != len(text):
        raise CorruptFrame("server name lengths do not match the names")
    ends = np.cumsum(lengths, dtype=np.int64).tolist()
    names = [text[a:b] for a, b in pairwise([0, *ends])]
    offset += text_bytes
    seconds = np.frombuffer(payload, "<i8", n, offset).astype(np.int64)
    states = np.frombuffer(payload, "i1", n, offset + 8 * n).astype(np.int8)
    values = np.frombuffer(payload, "<f8", n * metrics, offset + 9 * n).astype(np.float64)
    batch = Batch(names=names, seconds=seconds, states=states, values=values.reshape(n, metrics))
    return batch, received_at


def read_frame(handle: BinaryIO) -> bytes | None:
    """The next frame's payload; None at a clean end; CorruptFrame if torn or damaged."""
    head = handle.read(_FRAME.size)
    if not head:
        return None
    if len(head) < _FRAME.size:
        raise CorruptFrame(f"torn frame header ({len(head)} of {_FRAME.size} bytes)")
    magic, version, length, crc = _FRAME.unpack(head)
    if magic != MAGIC:
        raise CorruptFrame(f"no frame magic ({magic!r})")
    if version != VERSION:
        raise CorruptFrame(f"frame version {version}, this daemon reads {VERSION} (newer?)")
    if length > MAX_PAYLOAD:
        raise CorruptFrame(f"implausible payload length {length}")
    payload = handle.read(length)
    if len(payload) < length:
        raise CorruptFrame(f"torn frame ({len(payload)} of {length} payload bytes)")
    if zlib.crc32(payload) != crc:
        raise CorruptFrame("CRC mismatch")
    return payload


def read_segment(path: Path) -> Iterator[tuple[Batch, float]]:
    """The frames of one segment, up to its first torn or damaged frame (logged)."""
    try:
        handle = open(path, "rb")  # closed below, also when the caller stops early
    except OSError as exc:
        logger.error("cannot read write-ahead log segment %s (%s); skipping it", path, exc)
        return
    with handle:
        offset = 0
        while True:
            try:
                payload = read_frame(handle)
                if payload is None:
                    return
                frame = decode(payload)
            except (CorruptFrame, OSError) as exc:
                _report_bad_frame(path, offset, exc)
                return
            yield frame
            offset = handle.tell()


def _report_bad_frame(path: Path, offset: int, exc: Exception) -> None:
    try:
        after = path.stat().st_size - offset
    except OSError:
        after = -1
    logger.warning(
        "write-ahead log %s: bad frame at offset %d (%s); ignoring the %d bytes from there "
        "(a crash mid-write leaves such a tail: records not yet acknowledged)",
        path,
        offset,
        exc,
        after,
    )
