"""Saving and restoring the daemon's buffers and forecasts (one .npz, no pickle), and
replaying the write-ahead log (inference/wal.py) of the batches accepted since.

The file holds every buffer array, the server names, the cached trajectories and a JSON
header (format, ring and step sizes, contract columns and states, the model that made
the forecasts, wal_from). It is written to a uniquely named temporary file (mode 0600),
fsynced, renamed over the old one and the directory fsynced, so a crash leaves either
the old or the new file; a lock keeps two saves (the periodic one and the shutdown one)
from interleaving. With a write-ahead log, the snapshot rotates it under the service
lock: segments below ``wal_from`` hold only records already in the snapshot, and are
deleted once it is durable. On start the state file is restored, then the segments
from ``wal_from`` on (all of them without a usable file) are applied again, so no
acknowledged record is lost or applied twice.

Format 2 added the buffer arrays ``received`` and ``done``; a format-1 file is migrated
(``received`` = its saved_at, so that no server is evicted at once). A file with a newer
format, one that cannot be read, or one that does not fit this daemon is moved aside
(``<name>.bad-<time>``) with an error in the log, and the daemon starts empty.
Forecasts are restored only when the same model serves again; otherwise those servers
are forecast afresh. The live accuracy scores (inference/accuracy.py, arrays ``acc_*``)
come back with the forecasts, under the same condition; a file without them, or with
another accuracy FORMAT (written by an older daemon), restores everything else and
tracking starts again.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

import data_contract as dc
import risk
from inference import accuracy
from inference.buffers import ARRAYS, FleetBuffers
from inference.service import InferenceService
from inference.wal import WriteAheadLog, fsync_directory

logger = logging.getLogger(__name__)

FORMAT = 2
ADDED_IN_FORMAT_2 = ("received", "done")  # buffer arrays a format-1 file lacks
STATE_FILE = "daemon_state.npz"
_SAVING = threading.Lock()  # the worker's periodic save and the shutdown save


class StateFileError(ValueError):
    """A state file that cannot be restored; the message says why."""


def _header(buffers: FleetBuffers, model: str) -> dict[str, Any]:
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


def collect(service: InferenceService, wal: WriteAheadLog | None = None) -> dict[str, np.ndarray]:
    """Copies of everything to save, taken under the service lock (with the log rotated
    there too, so that the snapshot holds exactly the records of segments below wal_from)."""
    with service.lock:
        wal_from = wal.rotate() if wal is not None else None
        b = service.buffers
        arrays = {f"buf_{name}": b.view(name).copy() for name, *_ in ARRAYS}
        rows = np.array(sorted(service.cache), dtype=np.int64)
        forecasts = [service.cache[r] for r in rows.tolist()]
        horizon = service.forecaster.horizon
        arrays["names"] = np.array(b.names, dtype=str)
        arrays["cache_rows"] = rows
        arrays["cache_origin"] = np.array([f.origin for f in forecasts], dtype=np.int64)
        arrays["cache_made_at"] = np.array([f.made_at for f in forecasts], dtype=np.float64)
        arrays["cache_trajectory"] = (
            np.stack([f.trajectory for f in forecasts])
            if forecasts
            else np.empty((0, horizon, len(dc.METRIC_COLUMNS), 3), np.float16)
        )
        served = np.zeros((len(forecasts), len(dc.METRIC_COLUMNS)), np.int8)  # 0: the model
        for i, forecast in enumerate(forecasts):
            if forecast.served is not None:
                served[i] = forecast.served
        arrays["cache_served"] = served
        arrays["cache_since"] = np.array([f.since for f in forecasts], dtype=np.float64)
        arrays["cache_level"] = np.array(
            [risk.LEVEL_NAMES.index(f.assessment.level) for f in forecasts], dtype=np.int8
        )
        header = _header(b, service.forecaster.info["name"])
        header["wal_from"] = wal_from
        scores = service.accuracy.state(len(b))
        arrays.update({f"acc_{name}": values for name, values in scores.items()})
    arrays["header"] = np.array(json.dumps(header))
    return arrays


def save_state(
    service: InferenceService, directory: Path, wal: WriteAheadLog | None = None
) -> Path:
    """Write the state durably to directory/STATE_FILE (one save at a time), then delete
    the log segments it holds."""
    with _SAVING:
        directory.mkdir(parents=True, exist_ok=True)
        arrays = collect(service, wal)
        target = directory / STATE_FILE
        _write_durably(arrays, directory, target)
        if wal is not None:
            wal.truncate(json.loads(str(arrays["header"]))["wal_from"])
    logger.info("saved state of %d servers to %s", len(arrays["names"]), target)
    return target


def _write_durably(arrays: dict[str, np.ndarray], directory: Path, target: Path) -> None:
    """A unique temporary file (mode 0600), fsynced, renamed over target, the directory
    fsynced: after a crash there is the old file or the new one, never a mix."""
    fd, tmp = tempfile.mkstemp(prefix=f".{STATE_FILE}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, allow_pickle=False, **arrays)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_directory(directory)


def _remove_temporaries(directory: Path) -> None:
    """Temporary files of saves cut short by a crash (no save runs before the restore)."""
    for tmp in directory.glob(f".{STATE_FILE}.*.tmp"):
        tmp.unlink(missing_ok=True)
        logger.info("removed %s, left by a save that did not finish", tmp)


def _read(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    try:
        with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
        header = json.loads(str(arrays.pop("header")))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise StateFileError(f"unreadable: {exc!r}") from exc
    return header, arrays


def _check(header: dict[str, Any], arrays: dict[str, np.ndarray], buffers: FleetBuffers) -> None:
    expected = _header(buffers, header.get("model", ""))
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
    n = len(arrays.get("names", []))
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


def restore_state(
    service: InferenceService, directory: Path, wal: WriteAheadLog | None = None
) -> bool:
    """Load directory/STATE_FILE into a fresh service, then apply the log's batches that
    the file does not hold (all of them without a usable file); False if there was
    nothing (an unusable file is moved aside). After a replay the state is saved at once:
    a daemon crashing again within the save interval would otherwise replay ever more."""
    _remove_temporaries(directory)
    header = _restore_file(service, directory / STATE_FILE)
    replayed = 0
    if wal is not None:
        replayed = replay_log(service, wal, (header or {}).get("wal_from") or 0)
    if replayed:
        save_state(service, directory, wal)
    return header is not None or replayed > 0


def _restore_file(service: InferenceService, path: Path) -> dict[str, Any] | None:
    """The restored file's header; None without a usable file."""
    if not path.exists():
        return None
    try:
        header, arrays = _read(path)
        migrated = _migrate(header, arrays, service.buffers)
        _check(header, arrays, service.buffers)
    except StateFileError as exc:
        aside = path.with_name(f"{path.name}.bad-{time.strftime('%Y%m%d_%H%M%S')}")
        os.replace(path, aside)
        logger.error("state file %s %s; moved it to %s and starting empty", path, exc, aside)
        return None
    if migrated:
        logger.info("migrated state file from format 1 to %d", FORMAT)
    same_model = _load(service, header, arrays)
    logger.info(
        "restored %d servers from %s (saved %s)%s",
        len(service.buffers),
        path,
        time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(header["saved_at"])),
        "" if same_model else f"; forecasts of model {header['model']} dropped",
    )
    return header


def _migrate(header: dict[str, Any], arrays: dict[str, np.ndarray], buffers: FleetBuffers) -> bool:
    """Bring a format-1 file up to FORMAT (in place); whether it was one."""
    found = header.get("format")
    if isinstance(found, int) and found > FORMAT:
        raise StateFileError(
            f"has format {found}, but this daemon reads formats up to {FORMAT}: a newer "
            "daemon wrote it (run that version again, or start empty)"
        )
    if found != 1:
        return False  # FORMAT, or a format _check rejects
    saved_at = header.get("saved_at")
    if not isinstance(saved_at, (int, float)):
        raise StateFileError("has format 1 but no saved_at in its header")
    n = len(arrays.get("names", []))
    for name, _, _, dtype, fill in ARRAYS:
        if name in ADDED_IN_FORMAT_2 and f"buf_{name}" not in arrays:
            value = int(saved_at) if name == "received" else fill  # not evicted at once
            arrays[f"buf_{name}"] = np.full(buffers.shape(name, n), value, dtype=dtype)
    header["format"] = FORMAT
    return True


def _load(service: InferenceService, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> bool:
    """Buffers, and the forecasts if the same model serves; whether it does."""
    with service.lock:
        _load_buffers(service.buffers, arrays)
        same_model = header["model"] == service.forecaster.info["name"]
        if same_model:
            service.restore_forecasts(
                arrays["cache_rows"],
                arrays["cache_origin"],
                arrays["cache_trajectory"],
                arrays["cache_made_at"],
                arrays.get("cache_served"),  # absent in files from before accuracy tracking
                since=arrays.get("cache_since"),  # absent in files from before 2026-12-06
                levels=arrays.get("cache_level"),
            )
            _load_accuracy(service, header, arrays)
        else:
            service.buffers.mark_dirty()
    return same_model


def replay_log(service: InferenceService, wal: WriteAheadLog, start: int) -> int:
    """Apply the batches of segments start and later again (they were accepted before, so
    nothing is checked); how many batches."""
    records = batches = dropped = 0
    for batch, received_at in wal.replay(start):
        with service.lock:
            dropped += len(service.buffers.apply(batch, received_at).rejected)
        records, batches = records + len(batch), batches + 1
    if batches:
        with service.lock:
            service.buffers.mark_dirty()
    logger.info("replayed %d records in %d batches from the write-ahead log", records, batches)
    if dropped:  # max_servers was lowered since they were accepted
        logger.warning("write-ahead log: %d records were past the fleet limit", dropped)
    return batches


def _load_accuracy(
    service: InferenceService, header: dict[str, Any], arrays: dict[str, np.ndarray]
) -> None:
    if header.get("accuracy_format") != accuracy.FORMAT:
        logger.info("the state file holds no accuracy scores of this format; tracking restarts")
        return
    service.accuracy.reserve(len(service.buffers.arrays["head"]))
    service.accuracy.load({name: arrays[f"acc_{name}"] for name, *_ in accuracy.ARRAYS})


def _load_buffers(buffers: FleetBuffers, arrays: dict[str, np.ndarray]) -> None:
    names = [str(n) for n in arrays["names"]]
    buffers.register(names)
    for name, *_ in ARRAYS:
        buffers.view(name)[:] = arrays[f"buf_{name}"]
