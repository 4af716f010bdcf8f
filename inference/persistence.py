"""Saving and restoring the daemon's buffers and forecasts (one .npz, no pickle), and
replaying the write-ahead log (inference/wal.py) of the batches accepted since.

The file holds every buffer array, the server names, the cached trajectories and a JSON
header (format, ring and step sizes, contract columns and states, the model that made
the forecasts, wal_from). It is written durably (durable.write_atomically): a uniquely
named temporary file (mode 0600), fsynced, renamed over the old one and the directory
fsynced, so a crash leaves either the old or the new file; a lock keeps two saves (the
periodic one and the shutdown one) from interleaving. With a write-ahead log, the
snapshot rotates it under the service lock: segments below ``wal_from`` hold only
records already in the snapshot, and are deleted once it is durable. On start the state
file is restored, then the segments from ``wal_from`` on (all of them without a usable
file) are applied again, so no acknowledged record is lost or applied twice.

Files of older formats are migrated (inference/state_file.py). A file with a newer
format, one that cannot be read, one that does not fit this daemon, or one that fails
to load for any other reason is moved aside (``<name>.bad-<time>``) with one error in
the log, and the daemon starts empty.
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
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

import data_contract as dc
import risk
from durable import PRIVATE, write_atomically
from inference import accuracy, state_file
from inference.buffers import ARRAYS, FleetBuffers
from inference.service import InferenceService
from inference.state_file import FORMAT, StateFileError
from inference.wal import WriteAheadLog

logger = logging.getLogger(__name__)

STATE_FILE = "daemon_state.npz"
_SAVING = threading.Lock()  # the worker's periodic save and the shutdown save


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
        arrays.update(state_file.encode_names(b.names))
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
        header = state_file.make_header(b, service.forecaster.info["name"])
        header["wal_from"], header["servers"] = wal_from, len(b)
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
        _write_durably(arrays, target)
        header = json.loads(str(arrays["header"]))
        if wal is not None:
            wal.truncate(header["wal_from"])
    logger.info("saved state of %d servers to %s", header["servers"], target)
    return target


def _write_durably(arrays: dict[str, np.ndarray], target: Path) -> None:
    """durable.write_atomically (mode 0600): after a crash there is the old file or the
    new one, never a mix; its temporary file is .STATE_FILE.*.tmp."""
    write_atomically(target, lambda out: np.savez(out, allow_pickle=False, **arrays), mode=PRIVATE)


def _remove_temporaries(directory: Path) -> None:
    """Temporary files of saves cut short by a crash (no save runs before the restore)."""
    for tmp in directory.glob(f".{STATE_FILE}.*.tmp"):
        tmp.unlink(missing_ok=True)
        logger.info("removed %s, left by a save that did not finish", tmp)


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
    """The restored file's header; None without a usable file. A file that fails for any
    reason (it is input from disk: a check, or an error while loading its arrays) is moved
    aside and the daemon starts empty, as the README promises: one error line, no crash."""
    if not path.exists():
        return None
    try:
        header, migrated, same_model = _restore_arrays(service, path)
    except Exception as exc:  # any failure (see the docstring), not only StateFileError
        _start_empty(service)
        aside = path.with_name(f"{path.name}.bad-{time.strftime('%Y%m%d_%H%M%S')}")
        os.replace(path, aside)
        why = str(exc) if isinstance(exc, StateFileError) else f"could not be loaded: {exc!r}"
        logger.error("state file %s %s; moved it to %s and starting empty", path, why, aside)
        return None
    if migrated:
        logger.info("migrated state file from format 1 to %d", FORMAT)
    logger.info(
        "restored %d servers from %s (saved %s)%s",
        len(service.buffers),
        path,
        time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(header["saved_at"])),
        "" if same_model else f"; forecasts of model {header['model']} dropped",
    )
    return header


def _restore_arrays(service: InferenceService, path: Path) -> tuple[dict[str, Any], bool, bool]:
    """Read, migrate, check and load the file: its header, whether it was migrated from
    format 1 and whether the same model serves (its forecasts were restored)."""
    header, arrays = state_file.read(path)
    migrated = state_file.migrate(header, arrays, service.buffers)
    state_file.resize_ring(header, arrays, service.buffers)
    state_file.check(header, arrays, service.buffers)
    return header, migrated, _load(service, header, arrays)


def _start_empty(service: InferenceService) -> None:
    """Forget whatever a failed restore loaded."""
    with service.lock:
        service.buffers.clear()
        service.cache.clear()
        service.accuracy.reset()


def _load(service: InferenceService, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> bool:
    """Buffers, and the forecasts if the same model serves; whether it does."""
    with service.lock:
        _load_buffers(service.buffers, state_file.decode_names(arrays), arrays)
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


def _load_buffers(buffers: FleetBuffers, names: list[str], arrays: dict[str, np.ndarray]) -> None:
    buffers.register(names)
    for name, *_ in ARRAYS:
        buffers.view(name)[:] = arrays[f"buf_{name}"]
