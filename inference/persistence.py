"""Saving and restoring the daemon's buffers and forecasts (one .npz, no pickle).

The file holds every buffer array, the server names, the cached trajectories and a JSON
header (format, ring and step sizes, contract columns and states, the model that made
the forecasts). It is written to a temporary file, flushed and renamed over the old one,
so a crash leaves either the old or the new file. On start a file that cannot be read or
does not fit this daemon is moved aside (``<name>.bad-<time>``) with an error in the log,
and the daemon starts empty. Forecasts are restored only when the same model serves
again; otherwise those servers are forecast afresh. The live accuracy scores
(inference/accuracy.py, arrays ``acc_*``) come back with the forecasts, under the same
condition; a file without them, or with another accuracy FORMAT (written by an older
daemon), restores everything else and tracking starts again.
"""

from __future__ import annotations

import json
import logging
import os
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

import data_contract as dc
from inference import accuracy
from inference.buffers import ARRAYS, FleetBuffers
from inference.service import InferenceService

logger = logging.getLogger(__name__)

FORMAT = 1
STATE_FILE = "daemon_state.npz"


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


def collect(service: InferenceService) -> dict[str, np.ndarray]:
    """Copies of everything to save, taken under the service lock."""
    with service.lock:
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
        header = _header(b, service.forecaster.info["name"])
        scores = service.accuracy.state(len(b))
        arrays.update({f"acc_{name}": values for name, values in scores.items()})
    arrays["header"] = np.array(json.dumps(header))
    return arrays


def save_state(service: InferenceService, directory: Path) -> Path:
    """Write the state atomically to directory/STATE_FILE."""
    directory.mkdir(parents=True, exist_ok=True)
    arrays = collect(service)
    target, tmp = directory / STATE_FILE, directory / f".{STATE_FILE}.tmp"
    with open(tmp, "wb") as handle:
        np.savez(handle, **arrays)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, target)
    logger.info("saved state of %d servers to %s", len(arrays["names"]), target)
    return target


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
    if header.get("accuracy_format") == accuracy.FORMAT:
        for name, *_ in accuracy.ARRAYS:
            found = arrays.get(f"acc_{name}")
            if found is None or (found.shape, found.dtype) != accuracy.expected_shape(name, n):
                raise StateFileError(f"array acc_{name} is missing or has the wrong shape or type")


def restore_state(service: InferenceService, directory: Path) -> bool:
    """Load directory/STATE_FILE into a fresh service; False (file moved aside) if unusable."""
    path = directory / STATE_FILE
    if not path.exists():
        return False
    try:
        header, arrays = _read(path)
        _check(header, arrays, service.buffers)
    except StateFileError as exc:
        aside = path.with_name(f"{path.name}.bad-{time.strftime('%Y%m%d_%H%M%S')}")
        os.replace(path, aside)
        logger.error("state file %s %s; moved it to %s and starting empty", path, exc, aside)
        return False
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
            )
            _load_accuracy(service, header, arrays)
        else:
            service.buffers.mark_dirty()
    logger.info(
        "restored %d servers from %s (saved %s)%s",
        len(service.buffers),
        path,
        time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(header["saved_at"])),
        "" if same_model else f"; forecasts of model {header['model']} dropped",
    )
    return True


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
