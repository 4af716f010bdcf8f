"""What the daemon serves from its state: /predict, /alerts and /health bodies.

Everything is read under the service lock and rendered from cached JSON where it can be,
so a request never waits for the model. Time-dependent fields (forecast_status "stale",
"silent" alerts, readiness with steps closed by the wall clock) use service.clock().
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np

import data_contract as dc
import risk
from inference import early_warning as ew
from inference.cache import Forecast
from inference.predictions import (
    accuracy_fields,
    iso,
    iso_many,
    live_fields,
    predict_body,
    server_entry,
    trajectory_fields,
)
from inference.service import InferenceService
from inference.windows import window_values

SILENT_LEVEL = "warning"


def predict(
    service: InferenceService,
    servers: list[str] | None = None,
    trajectory: bool = False,
    accuracy: bool = False,
) -> bytes:
    """The /predict body (all servers, or those named that exist)."""
    return b"".join(predict_parts(service, servers, trajectory, accuracy))


def predict_parts(
    service: InferenceService,
    servers: list[str] | None = None,
    trajectory: bool = False,
    accuracy: bool = False,
) -> Iterator[bytes]:
    """The /predict body in parts (entries taken under the lock, joined lazily)."""
    now = service.clock()
    with service.lock:
        b, a = service.buffers, service.buffers.arrays
        if servers:
            rows = np.array([b.index[s] for s in servers if s in b.index], dtype=np.int64)
        else:
            rows = np.arange(len(b))
        warmup = (b.ready(now)[rows], b.warmup_progress(now)[rows], b.observed_share(now)[rows])
        status = _statuses(service, rows, warmup[0], now)
        live = live_fields(
            a["cur_values"][rows], a["cur_state"][rows], a["cur_sec"][rows], warmup, status
        )
        scores = _accuracy_blocks(service, rows) if accuracy else None
        entries = {
            b.names[row]: _entry(service, row, fields, trajectory, scores[i] if scores else b"")
            for i, (row, fields) in enumerate(zip(rows.tolist(), live, strict=True))
        }
        meta = meta_fields(service, now)
        if servers:
            meta["not_found"] = [s for s in servers if s not in b.index]
    return predict_body(entries, meta)


def _statuses(
    service: InferenceService, rows: np.ndarray, ready: np.ndarray, now: float
) -> list[str]:
    """forecast_status of rows: stale (silent), ok, pending (ready) or warming_up."""
    cache, silent = service.cache, service.silent(rows, now).tolist()
    return [
        "stale" if quiet else "ok" if row in cache else "pending" if is_ready else "warming_up"
        for row, quiet, is_ready in zip(rows.tolist(), silent, ready.tolist(), strict=True)
    ]


def _accuracy_blocks(service: InferenceService, rows: np.ndarray, per_part: int = 500) -> list:
    """?accuracy=true blocks of rows, in parts (bounded temporaries at 10,000 servers)."""
    blocks: list[bytes] = []
    for start in range(0, len(rows), per_part):
        blocks += accuracy_fields(*service.accuracy.report(rows[start : start + per_part]))
    return blocks


def _entry(
    service: InferenceService, row: int, live: dict[str, Any], trajectory: bool, scores: bytes
) -> bytes:
    cached = service.cache.get(row)
    if cached is None:
        return server_entry(live, (), scores)
    extra = b""
    if trajectory:
        if cached.trajectory_json is None:
            step = service.buffers.step_seconds
            cached.trajectory_json = trajectory_fields(cached.origin, step, cached.trajectory)
        extra = cached.trajectory_json
    return server_entry(live, (cached.fields, cached.risk_json), extra + scores)


def meta_fields(service: InferenceService, now: float) -> dict[str, Any]:
    """timestamp, model and fleet: the part every answer shares."""
    return {
        "timestamp": iso(time.time()),
        "model": {
            **service.forecaster.info,
            "last_pass": service.stats.as_dict(),
            "early_warning": ew.warning_info(service.warning, service.forecaster.info["name"]),
        },
        "fleet": fleet_summary(service, now),
    }


def fleet_summary(service: InferenceService, now: float) -> dict[str, Any]:
    b = service.buffers
    rows = np.arange(len(b))
    return {
        "servers": len(b),
        "ready": int(b.ready(now).sum()),
        "forecasts": len(service.cache),
        "silent": int(service.silent(rows, now).sum()),
        "warmup_progress": service.fleet_progress(now),
    }


def alerts(service: InferenceService, min_level: str = "warning") -> dict[str, Any]:
    """Risk alerts of the servers still reporting and a "silent" alert for each server
    that stopped; each carries forecast_origin, last_seen and since (when it began)."""
    if min_level not in risk.LEVEL_NAMES:
        raise ValueError(f"min_level must be one of {risk.LEVEL_NAMES}, got {min_level!r}")
    now = service.clock()
    with service.lock:
        rows = np.arange(len(service.buffers))
        silent = dict(zip(rows.tolist(), service.silent(rows, now).tolist(), strict=True))
        names, seen = service.buffers.names, service.buffers.arrays["cur_sec"]
        cached = {names[r]: (f, int(seen[r])) for r, f in service.cache.items() if not silent[r]}
        quiet = [(names[r], service.cache.get(r), int(seen[r])) for r, s in silent.items() if s]
        meta = meta_fields(service, now)
    step = service.buffers.step_seconds
    found = risk.alerts({name: f.assessment for name, (f, _) in cached.items()}, min_level)
    for alert in found:
        forecast, last_seen = cached[alert["server"]]
        alert |= {"kind": "risk", **_times(forecast, step, last_seen, forecast.since)}
    if risk.LEVEL_NAMES.index(SILENT_LEVEL) >= risk.LEVEL_NAMES.index(min_level):
        for name, forecast, last_seen in quiet:
            began = last_seen + service.silent_after_s
            found.append(_silent_alert(name) | _times(forecast, step, last_seen, began))
    found.sort(key=lambda a: (-risk.LEVEL_NAMES.index(a["level"]), -(a["risk_score"] or 0)))
    return {"alerts": found, **meta}


def _silent_alert(server: str) -> dict[str, Any]:
    return {
        "server": server,
        "kind": "silent",
        "level": SILENT_LEVEL,
        "risk_score": None,
        "factors": [],
    }


def _times(forecast: Forecast | None, step: int, last_seen: int, since: float) -> dict[str, Any]:
    """forecast_origin (None without a forecast), last_seen and since, as ISO 8601."""
    origin = None if forecast is None else iso(forecast.origin * step)
    return {"forecast_origin": origin, "last_seen": iso(last_seen), "since": iso(since)}


def health(service: InferenceService) -> dict[str, Any]:
    """The /health body: the model, the fleet, the last pass, feed counts, accuracy."""
    now = service.clock()
    with service.lock:
        fleet = fleet_summary(service, now)
        fleet["ticks_held"] = int(service.buffers.view("count").sum())
        info, stats = service.forecaster.info, service.stats.as_dict()
        accuracy = service.accuracy.summary(len(service.buffers), service.tracks_accuracy())
        feed = service.feed_stats.as_dict()
        wal = service.wal
        log = None if wal is None else {"segments": wal.segments, "bytes": wal.bytes}
        if log is not None:
            log["error"] = wal.failed  # a failed fsync: /feed answers 503 until recovered
    degraded = info["kind"] != "tft" or stats["error"] is not None or bool(log and log["error"])
    return {
        "status": "degraded" if degraded else "ok",
        "model_loaded": info["kind"] == "tft",
        "model": {"kind": info["kind"], "name": info["name"]},
        **fleet,
        "feed": feed,
        "wal": log,
        "last_pass": stats,
        "accuracy": accuracy,
        "uptime_s": round(time.time() - service.started_at, 1),
    }


def history(service: InferenceService, server: str) -> dict[str, Any] | None:
    """/history of one server (None if unknown): its closed 5-minute steps in the buffer
    (up to the 24-hour window, from its first tick), as the model reads them; a step
    without ticks is null (the model sees it filled, see window_values)."""
    now = service.clock()
    with service.lock:
        row = service.buffers.index.get(server)
        if row is None:
            return None
        snapshot = service.buffers.snapshot(np.array([row]), now)
        first = int(service.buffers.arrays["first"][row])
    values, _ = window_values(snapshot)
    steps = snapshot.last_step[0] + np.arange(1 - values.shape[1], 1)
    keep = steps >= first
    observed = snapshot.count[0][keep] > 0
    rounded = np.round(values[0][keep].astype(np.float64), 3)
    columns = np.where(observed[:, None], rounded, np.nan).T.tolist()
    states = [
        dc.VALID_STATES[c] if seen else None
        for c, seen in zip(snapshot.state[0][keep].tolist(), observed.tolist(), strict=True)
    ]
    return {
        "server": server,
        "step_seconds": service.buffers.step_seconds,
        "timestamps": iso_many(steps[keep] * service.buffers.step_seconds),
        "values": {
            m: [None if v != v else v for v in column]
            for m, column in zip(dc.METRIC_COLUMNS, columns, strict=True)
        },
        "states": states,
    }
