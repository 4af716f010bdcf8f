"""The daemon's state and work, without HTTP: feeding, the forecast pass, what to serve.

One lock guards the buffers and the cache. /feed applies a batch under it (milliseconds);
the background thread (ForecastWorker) takes the windows of ready servers whose origin
or closed steps changed, releases the lock while the model runs, and stores the results
under it. /predict only reads the cache (inference/views.py), so a request never waits
for the model. Each pass also scores the served TFT's earlier forecasts whose truth has
arrived (inference/accuracy.py). Between passes, housekeeping() scores the risk again
from each server's latest tick and forgets servers silent for TFT_EVICT_AFTER_S.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import orjson

import risk
from contract_parse import LISTED, Batch, Problems, check_records, fast_batch, load_records
from feedclient.answer import FeedAnswer
from feedclient.outcomes import Counts
from inference import early_warning as ew
from inference.accuracy import AccuracyTracker, substitute
from inference.buffers import FleetBuffers
from inference.cache import Forecast, PassStats
from inference.feed import feed_answer, feed_counts, log_feed, within_skew
from inference.forecast import Forecaster
from inference.predictions import forecast_fields, horizon_values, iso, risk_fields
from inference.windows import Snapshot, window_values

if TYPE_CHECKING:
    from inference.wal import WriteAheadLog
    from trouble.model import WarningModel

logger = logging.getLogger(__name__)


@dataclass
class InferenceService:
    forecaster: Forecaster
    buffers: FleetBuffers = field(default_factory=FleetBuffers)
    warning: WarningModel | None = None  # the forecaster's early-warning estimate, if fitted
    cores: dict[str, float] = field(default_factory=dict)
    default_cores: float = float("nan")
    cache: dict[int, Forecast] = field(default_factory=dict)
    chunk_size: int = 512  # servers per model call group in a pass
    stats: PassStats = field(default_factory=PassStats)
    feed_stats: Counts = field(default_factory=feed_counts)  # /feed's (inference/feed.py)
    accuracy: AccuracyTracker = field(default_factory=AccuracyTracker)
    serve_better: bool = False  # per metric, serve a baseline that beat the TFT (a day)
    max_clock_skew_s: float = 300.0  # ticks later than now + this are rejected; 0: off
    max_records: int | None = 50_000  # records per /feed body; more: TooManyRecords (413)
    silent_after_s: float = 900.0  # newest tick older than this: stale, "silent" alert
    evict_after_s: float = 86_400.0  # nothing received for this long: forgotten
    wal: WriteAheadLog | None = None  # accepted batches, replayed after a crash
    clock: Callable[[], float] = time.time
    started_at: float = field(default_factory=time.time)
    lock: threading.RLock = field(default_factory=threading.RLock)
    wake: threading.Event = field(default_factory=threading.Event)

    # --- /feed ------------------------------------------------------------------------

    def feed(self, body: bytes) -> FeedAnswer:
        """Apply the valid records of a body (FeedRejected: the body is not an array;
        TooManyRecords: more than max_records). status "ok", "partial" (some rejected) or
        "rejected" (none applied: HTTP 422). Off the event loop: invalid records take time."""
        records = load_records(body, self.max_records)
        return self._apply(*check_records(records, LISTED))

    def feed_fast(self, body: bytes) -> FeedAnswer | None:
        """feed() for a body the fast path takes whole (cheap enough for the event loop);
        None for any other, which feed() must check."""
        batch = fast_batch(load_records(body, self.max_records))
        return None if batch is None else self._apply(batch, Problems())

    def _apply(self, batch: Batch, problems: Problems) -> FeedAnswer:
        now = self.clock()
        batch, ahead = within_skew(batch, now, self.max_clock_skew_s)
        with self.lock:
            if self.wal is not None and len(batch):
                self.wal.append(batch, now)  # in the OS before we answer (see WalFlusher)
            applied = self.buffers.apply(batch, now)
            servers, progress = len(self.buffers), self.fleet_progress(now)
        self.wake.set()
        answer = feed_answer(applied, [problems, ahead], servers, progress)
        with self.lock:
            self.feed_stats.add(answer)
        log_feed(answer)
        return answer

    def fleet_progress(self, now: float | None = None) -> float:
        """The fleet's mean warmup, in percent (0 with no servers)."""
        progress = self.buffers.warmup_progress(now)
        return round(100.0 * float(progress.mean()), 1) if len(progress) else 0.0

    # --- the forecast pass ------------------------------------------------------------

    def run_pass(self) -> int:
        """Forecast every ready server whose origin or closed steps changed, chunk_size
        servers at a time (bounded memory); returns how many. A failure is recorded and
        re-raised, and the servers not done are forecast again at the next pass."""
        now = self.clock()
        with self.lock:
            rows, forecaster = self.buffers.take_due(now), self.forecaster
        started, done = time.perf_counter(), 0
        try:
            for done in range(0, len(rows), self.chunk_size):
                self._forecast_chunk(rows[done : done + self.chunk_size], forecaster, now)
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

    def _forecast_chunk(self, rows: np.ndarray, forecaster: Forecaster, now: float) -> None:
        with self.lock:
            snapshot, warning = self.buffers.snapshot(rows, now), self.warning
            past = None if warning is None else ew.history(self.buffers, rows, now)
        values, states = window_values(snapshot)
        trajectory = forecaster.forecast(values, states, snapshot.servers, snapshot.last_step)
        self.track_accuracy(rows, snapshot, values, trajectory, forecaster)
        served = self._better_methods(rows, forecaster)
        if served is not None:
            trajectory = substitute(trajectory, values, served)
        assessments, found = self._assess(snapshot, trajectory, warning, past)
        self._store(rows, snapshot, trajectory, assessments, forecaster, served=served, found=found)

    def _assess(
        self,
        snapshot: Snapshot,
        trajectory: np.ndarray,
        warning: WarningModel | None,
        past: np.ndarray | None,
    ) -> tuple[list[risk.Assessment], ew.Estimate | None]:
        """The risk of servers just forecast (inference/early_warning.py: the estimate's
        levels when the forecaster has one, else risk.py's rules) and the estimate."""
        cores, step = self._cores(snapshot.servers), self.buffers.step_seconds
        return ew.assess_forecasts(warning, snapshot, trajectory, past, cores, step)

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
        snapshot: Snapshot,
        trajectory: np.ndarray,
        assessments: list[risk.Assessment],
        forecaster: Forecaster,
        made_at: np.ndarray | None = None,
        served: np.ndarray | None = None,
        found: ew.Estimate | None = None,
    ) -> None:
        now, step = time.time(), self.buffers.step_seconds
        chances = ew.summary(found) if found is not None else [None] * len(rows)
        made = np.full(len(rows), now) if made_at is None else made_at
        horizons, origins = horizon_values(trajectory), snapshot.last_step.tolist()
        compact = np.clip(trajectory, 0, np.finfo(np.float16).max).astype(np.float16)
        entries = {}
        for i, row in enumerate(rows.tolist()):
            by = None if served is None else served[i]
            fields = forecast_fields(origins[i], step, horizons[i], by)
            fields["forecast_made_at"] = iso(made[i])
            entries[row] = Forecast(
                origin=origins[i],
                trajectory=compact[i],
                made_at=float(made[i]),
                fields=b"," + orjson.dumps(fields)[1:-1],
                assessment=assessments[i],
                risk_json=risk_fields(assessments[i], chances[i]),
                scored_sec=int(snapshot.latest_sec[i]),
                since=now,
                served=by,
                estimate=None if found is None else found.row(i),
                chance=chances[i],
            )
        with self.lock:
            if forecaster is self.forecaster:  # else swapped while running: discard
                self._keep_since(entries)
                self.cache.update(entries)

    def _keep_since(self, entries: dict[int, Forecast]) -> None:
        """A new forecast at the same risk level keeps the level's since."""
        for row, entry in entries.items():
            old = self.cache.get(row)
            if old is not None and old.assessment.level == entry.assessment.level:
                entry.since = old.since

    def restore_forecasts(
        self,
        rows: np.ndarray,
        origins: np.ndarray,
        trajectory: np.ndarray,
        made_at: np.ndarray,
        served: np.ndarray | None = None,
        since: np.ndarray | None = None,
        levels: np.ndarray | None = None,
    ) -> None:
        """Cache saved forecasts again (their risk is scored again from the buffers); a
        level that comes back the same keeps its saved since (when it began)."""
        with self.lock:
            snapshot, warning = self.buffers.snapshot(rows), self.warning
            snapshot.last_step[:] = origins
            past = None if warning is None else ew.history(self.buffers, rows, self.clock())
            forecast = trajectory.astype(np.float32)
            assessments, found = self._assess(snapshot, forecast, warning, past)
            forecaster = self.forecaster
            self._store(rows, snapshot, trajectory, assessments, forecaster, made_at, served, found)
            if since is not None and levels is not None:
                for row, at, level in zip(
                    rows.tolist(), since.tolist(), levels.tolist(), strict=True
                ):
                    entry = self.cache.get(row)
                    if entry is not None and entry.assessment.level == risk.LEVEL_NAMES[level]:
                        entry.since = at

    def _cores(self, servers: list[str]) -> np.ndarray:
        return np.array([self.cores.get(s, self.default_cores) for s in servers])

    def swap_forecaster(self, forecaster: Forecaster, warning: WarningModel | None = None) -> None:
        """Serve a new model (and its early-warning estimate): forget the old model's
        forecasts and forecast everyone again."""
        with self.lock:
            self.forecaster, self.warning = forecaster, warning
            self.cache.clear()
            self.accuracy.reset()
            self.buffers.mark_dirty()
        self.wake.set()

    # --- between passes ---------------------------------------------------------------

    def housekeeping(self) -> None:
        """Score the risk again where a tick arrived since; forget long-silent servers.
        Runs in the worker thread, between passes (eviction renumbers rows)."""
        self.rescore()
        self.evict()

    def rescore(self) -> int:
        """Score the risk of cached forecasts again from each server's latest tick, where
        one arrived since the last scoring, chunk_size servers at a time (bounded memory);
        returns how many."""
        with self.lock:
            rows = np.array(sorted(self.cache), dtype=np.int64)
            scored = np.array([self.cache[r].scored_sec for r in rows.tolist()], dtype=np.int64)
            rows = rows[self.buffers.arrays["cur_sec"][rows] != scored]
        for start in range(0, len(rows), self.chunk_size):
            self._rescore_chunk(rows[start : start + self.chunk_size])
        return len(rows)

    def _rescore_chunk(self, rows: np.ndarray) -> None:
        with self.lock:
            forecasts = [self.cache.get(r) for r in rows.tolist()]
            current = self.buffers.arrays["cur_values"][rows]
            seconds = self.buffers.arrays["cur_sec"][rows].tolist()
            cores = self._cores([self.buffers.names[r] for r in rows.tolist()])
        if None in forecasts:  # swapped or renumbered meanwhile: the next call redoes it
            return
        assessments, now = self._reassess(forecasts, current, cores), self.clock()
        with self.lock:
            for row, forecast, assessment, sec in zip(
                rows.tolist(), forecasts, assessments, seconds, strict=True
            ):
                if self.cache.get(row) is forecast:
                    forecast.rescored(assessment, sec, now)

    def _reassess(
        self, forecasts: list[Forecast], current: np.ndarray, cores: np.ndarray
    ) -> list[risk.Assessment]:
        """The risk of cached forecasts from the latest ticks (inference/early_warning.py)."""
        return ew.reassess(self.warning, forecasts, current, cores, self.buffers.step_seconds)

    def evict(self) -> list[str]:
        """Forget servers from which nothing was received for evict_after_s."""
        with self.lock:
            keep, evicted = self.buffers.evict(self.clock() - self.evict_after_s)
            if not evicted:
                return []
            renumbered = {int(old): new for new, old in enumerate(keep.tolist())}
            self.cache = {renumbered[r]: f for r, f in self.cache.items() if r in renumbered}
            self.accuracy.keep(keep, len(keep) + len(evicted))
            self.feed_stats.evicted_servers += len(evicted)
        logger.info(
            "forgot %d server(s) silent for %.0f s (TFT_EVICT_AFTER_S), e.g. %s",
            len(evicted),
            self.evict_after_s,
            ", ".join(evicted[:5]),
        )
        return evicted

    def silent(self, rows: np.ndarray, now: float) -> np.ndarray:
        """Whether each row's newest tick is older than now - silent_after_s."""
        return self.buffers.arrays["cur_sec"][rows] < now - self.silent_after_s
