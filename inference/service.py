"""The daemon's state and work, without HTTP: feeding, the forecast pass, what to serve.

One lock guards the buffers and the cache. /feed applies a batch under it (milliseconds);
the background thread (ForecastWorker) takes the windows of ready servers whose closed
steps changed, releases the lock while the model runs, and stores the results under it.
/predict only reads the cache, so a request never waits for the model. Each pass also
scores the served TFT's earlier forecasts whose truth has arrived (inference/accuracy.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

import risk
from inference.accuracy import AccuracyTracker, substitute
from inference.buffers import FleetBuffers, Snapshot, window_values
from inference.forecast import Forecaster
from inference.ingest import parse_feed
from inference.predictions import (
    accuracy_fields,
    forecast_fields,
    horizon_values,
    iso,
    live_fields,
    predict_body,
    server_entry,
    trajectory_fields,
)

logger = logging.getLogger(__name__)


@dataclass
class Forecast:
    """A server's cached forecast: trajectory (H, 14, 3), its risk and its JSON.

    The trajectory is kept as float16 (3 significant digits, 8 KB instead of 16 KB per
    server) for ?trajectory=true and the state file; the JSON fields and the risk are
    computed from the model's float32 output before that."""

    origin: int
    trajectory: np.ndarray
    assessment: risk.Assessment
    made_at: float
    fields: bytes
    trajectory_json: bytes | None = None
    served: np.ndarray | None = None  # (14,) who made each metric: 0 the model, see accuracy


@dataclass
class PassStats:
    passes: int = 0
    servers: int = 0
    seconds: float = 0.0
    finished_at: float | None = None
    error: str | None = None
    error_at: float | None = None
    failures: int = 0

    def as_dict(self) -> dict[str, Any]:
        out = {"passes": self.passes, "servers": self.servers, "seconds": round(self.seconds, 3)}
        out["finished_at"] = iso(self.finished_at) if self.finished_at else None
        out["error"] = self.error
        out["error_at"] = iso(self.error_at) if self.error_at else None
        out["failures"] = self.failures
        return out


@dataclass
class InferenceService:
    forecaster: Forecaster
    buffers: FleetBuffers = field(default_factory=FleetBuffers)
    cores: dict[str, float] = field(default_factory=dict)
    default_cores: float = float("nan")
    cache: dict[int, Forecast] = field(default_factory=dict)
    chunk_size: int = 512  # servers per model call group in a pass
    stats: PassStats = field(default_factory=PassStats)
    accuracy: AccuracyTracker = field(default_factory=AccuracyTracker)
    serve_better: bool = False  # per metric, serve a baseline that beat the TFT (a day)
    started_at: float = field(default_factory=time.time)
    lock: threading.RLock = field(default_factory=threading.RLock)
    wake: threading.Event = field(default_factory=threading.Event)

    # --- /feed ------------------------------------------------------------------------

    def feed(self, body: bytes) -> dict[str, Any]:
        """Validate and apply a whole batch (FeedRejected: nothing applied)."""
        batch = parse_feed(body)
        with self.lock:
            applied = self.buffers.apply(batch)
            progress = self.fleet_progress()
            servers = len(self.buffers)
        self.wake.set()
        logger.debug("feed: %s", applied)
        return {
            "status": "ok",
            "received": applied.received,
            "applied": applied.applied,
            "duplicates": applied.duplicates,
            "stale": applied.stale,
            "new_servers": applied.new_servers,
            "servers": servers,
            "warmup_progress": progress,
        }

    def fleet_progress(self) -> float:
        """The fleet's mean warmup, in percent (0 with no servers)."""
        progress = self.buffers.warmup_progress()
        return round(100.0 * float(progress.mean()), 1) if len(progress) else 0.0

    # --- the forecast pass ------------------------------------------------------------

    def run_pass(self) -> int:
        """Forecast every ready server whose closed steps changed, chunk_size servers at a
        time (bounded memory); returns how many. A failure is recorded and re-raised, and
        the servers not done are forecast again at the next pass."""
        with self.lock:
            rows, forecaster = self.buffers.take_dirty(), self.forecaster
        started, done = time.perf_counter(), 0
        try:
            for done in range(0, len(rows), self.chunk_size):
                self._forecast_chunk(rows[done : done + self.chunk_size], forecaster)
        except Exception as exc:
            with self.lock:
                self.buffers.mark_dirty(rows[done:])
                self.stats.error, self.stats.error_at = f"{type(exc).__name__}: {exc}", time.time()
                self.stats.failures += 1
            raise
        if len(rows):
            with self.lock:
                self.stats.passes += 1
                self.stats.servers, self.stats.error = len(rows), None
                self.stats.seconds = time.perf_counter() - started
                self.stats.finished_at = time.time()
        return len(rows)

    def _forecast_chunk(self, rows: np.ndarray, forecaster: Forecaster) -> None:
        with self.lock:
            snapshot = self.buffers.snapshot(rows)
        values, states = window_values(snapshot)
        trajectory = forecaster.forecast(values, states, snapshot.servers, snapshot.last_step)
        self.track_accuracy(rows, snapshot, values, trajectory, forecaster)
        served = self._better_methods(rows, forecaster)
        if served is not None:
            trajectory = substitute(trajectory, values, served)
        cores = np.array([self._cores(s) for s in snapshot.servers])
        assessments = risk.assess(values[:, -1], trajectory, cores)
        self._store(rows, snapshot.last_step, trajectory, assessments, forecaster, served=served)

    def _better_methods(self, rows: np.ndarray, forecaster: Forecaster) -> np.ndarray | None:
        """With serve_better, which method to serve per row and metric (None: the model's)."""
        with self.lock:
            if not (self.serve_better and forecaster is self.forecaster):
                return None
            served = self.accuracy.better_methods(rows) if self.tracks_accuracy() else None
        return served if served is not None and served.any() else None

    def track_accuracy(
        self,
        rows: np.ndarray,
        snapshot: Snapshot,
        values: np.ndarray,
        trajectory: np.ndarray,
        forecaster: Forecaster,
    ) -> None:
        """Score the earlier forecasts of rows whose truth has arrived and remember the new
        ones (inference/accuracy.py), if forecaster is the TFT still being served."""
        with self.lock:
            if forecaster is self.forecaster and self.tracks_accuracy():
                self.accuracy.reserve(len(self.buffers.arrays["head"]))
                observed = snapshot.count > 0
                self.accuracy.update(rows, snapshot.last_step, values, observed, trajectory)

    def tracks_accuracy(self) -> bool:
        """Accuracy is tracked for the TFT only (the labelled baseline would score itself)."""
        return self.forecaster.info["kind"] == "tft"

    def _store(
        self,
        rows: np.ndarray,
        origins: np.ndarray,
        trajectory: np.ndarray,
        assessments: list[risk.Assessment],
        forecaster: Forecaster,
        made_at: np.ndarray | None = None,
        served: np.ndarray | None = None,
    ) -> None:
        now, step = time.time(), self.buffers.step_seconds
        made = np.full(len(rows), now) if made_at is None else made_at
        entries, horizons = {}, horizon_values(trajectory)
        compact = np.clip(trajectory, 0, np.finfo(np.float16).max).astype(np.float16)
        for i, row in enumerate(rows.tolist()):
            by = None if served is None else served[i]
            fields = forecast_fields(int(origins[i]), step, horizons[i], assessments[i], by)
            fields["forecast_made_at"] = iso(made[i])
            entries[row] = Forecast(
                int(origins[i]),
                compact[i],
                assessments[i],
                float(made[i]),
                orjson.dumps(fields),
                served=by,
            )
        with self.lock:
            if forecaster is self.forecaster:  # else swapped while running: discard
                self.cache.update(entries)

    def restore_forecasts(
        self,
        rows: np.ndarray,
        origins: np.ndarray,
        trajectory: np.ndarray,
        made_at: np.ndarray,
        served: np.ndarray | None = None,
    ) -> None:
        """Cache saved forecasts again (their risk is recomputed from the buffers)."""
        with self.lock:
            values, _ = window_values(self.buffers.snapshot(rows))
            cores = np.array([self._cores(self.buffers.names[r]) for r in rows.tolist()])
            assessments = risk.assess(values[:, -1], trajectory, cores)
            forecaster = self.forecaster
            self._store(rows, origins, trajectory, assessments, forecaster, made_at, served)

    def _cores(self, server: str) -> float:
        return self.cores.get(server, self.default_cores)

    def swap_forecaster(self, forecaster: Forecaster) -> None:
        """Serve a new model: forget the old model's forecasts and forecast everyone again."""
        with self.lock:
            self.forecaster = forecaster
            self.cache.clear()
            self.accuracy.reset()
            self.buffers.mark_dirty()
        self.wake.set()

    # --- reading ----------------------------------------------------------------------

    def predict(
        self, servers: list[str] | None = None, trajectory: bool = False, accuracy: bool = False
    ) -> bytes:
        """The /predict body (all servers, or those named that exist)."""
        return b"".join(self.predict_parts(servers, trajectory, accuracy))

    def predict_parts(
        self, servers: list[str] | None = None, trajectory: bool = False, accuracy: bool = False
    ) -> Iterator[bytes]:
        """The /predict body in parts (entries taken under the lock, joined lazily)."""
        with self.lock:
            b, a = self.buffers, self.buffers.arrays
            if servers:
                rows = np.array([b.index[s] for s in servers if s in b.index], dtype=np.int64)
            else:
                rows = np.arange(len(b))
            live = live_fields(
                a["cur_values"][rows],
                a["cur_state"][rows],
                a["cur_sec"][rows],
                b.warmup_progress()[rows],
                b.ready()[rows],
            )
            scores = self._accuracy_blocks(rows) if accuracy else None
            entries = {
                b.names[row]: self._entry(row, fields, trajectory, scores[i] if scores else b"")
                for i, (row, fields) in enumerate(zip(rows.tolist(), live, strict=True))
            }
            meta = self._meta()
            if servers:
                meta["not_found"] = [s for s in servers if s not in b.index]
        return predict_body(entries, meta)

    def _accuracy_blocks(self, rows: np.ndarray, per_part: int = 500) -> list[bytes]:
        """?accuracy=true blocks of rows, in parts (bounded temporaries at 10,000 servers)."""
        blocks: list[bytes] = []
        for start in range(0, len(rows), per_part):
            blocks += accuracy_fields(*self.accuracy.report(rows[start : start + per_part]))
        return blocks

    def _entry(self, row: int, live: dict[str, Any], trajectory: bool, scores: bytes) -> bytes:
        cached = self.cache.get(row)
        if cached is None:
            return server_entry(live, None, scores)
        extra = b""
        if trajectory:
            if cached.trajectory_json is None:
                step = self.buffers.step_seconds
                cached.trajectory_json = trajectory_fields(cached.origin, step, cached.trajectory)
            extra = cached.trajectory_json
        return server_entry(live, cached.fields, extra + scores)

    def _meta(self) -> dict[str, Any]:
        return {
            "timestamp": iso(time.time()),
            "model": {**self.forecaster.info, "last_pass": self.stats.as_dict()},
            "fleet": self.fleet_summary(),
        }

    def fleet_summary(self) -> dict[str, Any]:
        ready = self.buffers.ready()
        return {
            "servers": len(self.buffers),
            "ready": int(ready.sum()),
            "forecasts": len(self.cache),
            "warmup_progress": self.fleet_progress(),
        }

    def alerts(self, min_level: str = "warning") -> dict[str, Any]:
        with self.lock:
            names = self.buffers.names
            assessments = {names[row]: f.assessment for row, f in self.cache.items()}
            meta = self._meta()
        return {"alerts": risk.alerts(assessments, min_level), **meta}

    def health(self) -> dict[str, Any]:
        with self.lock:
            fleet = self.fleet_summary()
            fleet["ticks_held"] = int(self.buffers.view("count").sum())
            info, stats = self.forecaster.info, self.stats.as_dict()
            accuracy = self.accuracy.summary(len(self.buffers), self.tracks_accuracy())
        degraded = info["kind"] != "tft" or stats["error"] is not None
        return {
            "status": "degraded" if degraded else "ok",
            "model_loaded": info["kind"] == "tft",
            "model": {"kind": info["kind"], "name": info["name"]},
            **fleet,
            "last_pass": stats,
            "accuracy": accuracy,
            "uptime_s": round(time.time() - self.started_at, 1),
        }
