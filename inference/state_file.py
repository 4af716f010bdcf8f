"""The state file's format (see inference/persistence.py): its JSON header, the server
names, the checks that it fits this daemon, and the migration of format 1.

Format 2 added the buffer arrays ``received`` and ``done``; a format-1 file is migrated
(``received`` = its saved_at, so that no server is evicted at once). The server names are
stored twice: ``server_names``, the bytes of a JSON list, keeps every name exactly and is
what the daemon reads; ``names``, a fixed-width numpy string array, is what files held
before (it drops a trailing NUL, so that "web" and "web\\x00" came back as one name and
the restore failed) and stays for tools (bench/drill_kill.py) and older daemons. A file
without ``server_names`` is read from ``names``.

A file saved with another ring (a daemon that kept fewer or more steps of history: the
early-warning evidence made the ring 3 h longer) is laid out for this daemon's ring: each
server keeps the steps both rings hold, so an upgrade loses no warm-up.
"""

from __future__ import annotations

import json
import logging
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

import data_contract as dc
from inference import accuracy
from inference.buffers import ARRAYS, FleetBuffers

logger = logging.getLogger(__name__)

FORMAT = 2
ADDED_IN_FORMAT_2 = ("received", "done")  # buffer arrays a format-1 file lacks


class StateFileError(ValueError):
    """A state file that cannot be restored; the message says why."""


def make_header(buffers: FleetBuffers, model: str) -> dict[str, Any]:
    """The header of a file saved now from buffers, forecasts made by model."""
    return {
        "format": FORMAT,
        "ring": buffers.ring,
        "late_steps": buffers.late,
        "encoder_length": buffers.encoder_length,
        "step_seconds": buffers.step_seconds,
        "metrics": list(dc.METRIC_COLUMNS),
        "states": list(dc.VALID_STATES),
        "model": model,
        "accuracy_format": accuracy.FORMAT,
        "saved_at": time.time(),
    }


def encode_names(names: list[str]) -> dict[str, np.ndarray]:
    """The name arrays: server_names (a JSON list, ASCII-escaped: exact for every string)
    and names (as files before server_names held them)."""
    exact = np.frombuffer(json.dumps(names).encode("ascii"), dtype=np.uint8)
    return {"server_names": exact, "names": np.array(names, dtype=str)}


def decode_names(arrays: dict[str, np.ndarray]) -> list[str]:
    """The names saved (from names in a file without server_names); StateFileError unless
    they are distinct strings."""
    found = arrays.get("server_names")
    if found is None:
        names: Any = [str(n) for n in arrays.get("names", np.array([], dtype=str)).tolist()]
    elif found.dtype != np.uint8 or found.ndim != 1:
        raise StateFileError("array server_names has the wrong shape or type")
    else:
        names = json.loads(found.tobytes().decode("ascii"))
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise StateFileError("array server_names does not hold a list of names")
    if len(set(names)) != len(names):
        raise StateFileError("holds a server name twice (an older daemon saved two as one)")
    return names


def read(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The header and the arrays of the file (StateFileError if it cannot be read)."""
    try:
        with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
        header = json.loads(str(arrays.pop("header")))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise StateFileError(f"unreadable: {exc!r}") from exc
    return header, arrays


def check(header: dict[str, Any], arrays: dict[str, np.ndarray], buffers: FleetBuffers) -> None:
    """StateFileError unless the file fits this daemon (format, sizes, array shapes)."""
    expected = make_header(buffers, header.get("model", ""))
    for key in (
        "format",
        "ring",
        "late_steps",
        "encoder_length",
        "step_seconds",
        "metrics",
        "states",
    ):
        if header.get(key) != expected[key]:
            raise StateFileError(
                f"{key} is {header.get(key)!r}, this daemon uses {expected[key]!r}"
            )
    n = len(decode_names(arrays))
    if n > buffers.max_servers:
        raise StateFileError(f"holds {n} servers, more than max_servers {buffers.max_servers}")
    for name, _, _, dtype, _ in ARRAYS:
        found = arrays.get(f"buf_{name}")
        if found is None or found.shape != buffers.shape(name, n) or found.dtype != dtype:
            raise StateFileError(f"array {name} is missing or has the wrong shape or type")
    served, cached = arrays.get("cache_served"), len(arrays.get("cache_rows", []))
    if served is not None and (
        served.shape != (cached, len(dc.METRIC_COLUMNS)) or served.dtype != np.int8
    ):
        raise StateFileError("array cache_served has the wrong shape or type")
    for name, dtype in (("cache_since", np.float64), ("cache_level", np.int8)):
        found = arrays.get(name)
        if found is not None and (found.shape != (cached,) or found.dtype != dtype):
            raise StateFileError(f"array {name} has the wrong shape or type")
    if header.get("accuracy_format") == accuracy.FORMAT:
        for name, *_ in accuracy.ARRAYS:
            found = arrays.get(f"acc_{name}")
            if found is None or (found.shape, found.dtype) != accuracy.expected_shape(name, n):
                raise StateFileError(f"array acc_{name} is missing or has the wrong shape or type")


def migrate(header: dict[str, Any], arrays: dict[str, np.ndarray], buffers: FleetBuffers) -> bool:
    """Bring a format-1 file up to FORMAT (in place); whether it was one."""
    found = header.get("format")
    if isinstance(found, int) and found > FORMAT:
        raise StateFileError(
            f"has format {found}, but this daemon reads formats up to {FORMAT}: a newer "
            "daemon wrote it (run that version again, or start empty)"
        )
    if found != 1:
        return False  # FORMAT, or a format check() rejects
    saved_at = header.get("saved_at")
    if not isinstance(saved_at, (int, float)):
        raise StateFileError("has format 1 but no saved_at in its header")
    n = len(decode_names(arrays))
    for name, _, _, dtype, fill in ARRAYS:
        if name in ADDED_IN_FORMAT_2 and f"buf_{name}" not in arrays:
            value = int(saved_at) if name == "received" else fill  # not evicted at once
            arrays[f"buf_{name}"] = np.full(buffers.shape(name, n), value, dtype=dtype)
    header["format"] = FORMAT
    return True


def resize_ring(
    header: dict[str, Any], arrays: dict[str, np.ndarray], buffers: FleetBuffers
) -> bool:
    """Lay the ring arrays of a file saved with another ring out for buffers' ring (in
    place); whether it did. A file that does not fit otherwise is left for check()."""
    found, n = header.get("ring"), len(decode_names(arrays))
    head = arrays.get("buf_head")
    if found == buffers.ring or not isinstance(found, int) or head is None or head.shape != (n,):
        return False
    ring = [(name, dtype, fill) for name, axis, _, dtype, fill in ARRAYS if axis == "ring"]
    for name, dtype, _ in ring:
        old = arrays.get(f"buf_{name}")
        if old is None or old.shape[:2] != (n, found) or old.dtype != dtype:
            return False
    for name, _, fill in ring:
        arrays[f"buf_{name}"] = relayout(arrays[f"buf_{name}"], head, buffers.ring, fill)
    header["ring"] = buffers.ring
    logger.info("state file: ring of %d steps laid out for this daemon's %d", found, buffers.ring)
    return True


def relayout(array: np.ndarray, head: np.ndarray, ring: int, fill: Any) -> np.ndarray:
    """(N, old ring, ...) with step s in slot s % old -> (N, ring, ...) with it in slot
    s % ring: the newest min(old, ring) steps up to each head (-1: none) kept, the rest fill."""
    n, old = array.shape[:2]
    out = np.full((n, ring, *array.shape[2:]), fill, dtype=array.dtype)
    steps = head[:, None] - np.arange(min(old, ring))[None, :]
    keep = (head[:, None] >= 0) & (steps >= 0)
    rows = np.broadcast_to(np.arange(n)[:, None], steps.shape)[keep]
    out[rows, steps[keep] % ring] = array[rows, steps[keep] % old]
    return out
