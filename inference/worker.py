"""The background thread that runs forecast passes (and saves the state now and then)."""

from __future__ import annotations

import ctypes
import gc
import logging
import threading
import time
from collections.abc import Callable

from inference.service import InferenceService
from inference.wal import WriteAheadLog, WriteAheadLogError

logger = logging.getLogger(__name__)

# At most one full collection (unfrozen, 220-350 ms with 1,000 servers) an hour: it frees
# frozen objects that became cyclic garbage after their freeze.
FULL_COLLECT_S = 3600.0
# The longest wait between two tries to recover the write-ahead log after a failed fsync.
RECOVER_MAX_S = 60.0


class ForecastWorker:
    """Runs service.run_pass() whenever a feed woke it (or every poll_s), off the event loop.

    coalesce_s: after a wake-up, wait this long so that servers closing a step at nearly
    the same time share one batched pass. After a failed pass (logged with its traceback,
    and shown by /health and /predict) it waits retry_s before trying again.
    """

    def __init__(
        self,
        service: InferenceService,
        coalesce_s: float = 1.0,
        retry_s: float = 10.0,
        poll_s: float = 1.0,
        save: Callable[[], None] | None = None,
        save_every_s: float = 60.0,
        full_collect_s: float = FULL_COLLECT_S,
    ) -> None:
        self.service, self.coalesce_s, self.retry_s, self.poll_s = (
            service,
            coalesce_s,
            retry_s,
            poll_s,
        )
        self.save, self.save_every_s = save, save_every_s
        self.full_collect_s, self._full_at = full_collect_s, time.monotonic()
        self._forecaster = service.forecaster  # the model the last full collection saw
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="forecast-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self.service.wake.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        last_save = time.monotonic()
        while not self._stop.is_set():
            if self.service.wake.wait(self.poll_s):
                self.service.wake.clear()
                self._stop.wait(self.coalesce_s)
            if self._stop.is_set():
                break
            self._forecast()
            self._housekeeping()
            if self.save is not None and time.monotonic() - last_save >= self.save_every_s:
                self._save()
                last_save = time.monotonic()

    def _forecast(self) -> None:
        try:
            started = time.perf_counter()
            count = self.service.run_pass()
            if count:
                self._settle()
                logger.info(
                    "forecast pass: %d servers in %.2f s", count, time.perf_counter() - started
                )
        except Exception:
            logger.exception("forecast pass failed; retrying in %.0f s", self.retry_s)
            self._stop.wait(self.retry_s)

    def _settle(self) -> None:
        """settle_memory() after a pass; a full one when the model was replaced (the old
        one is cyclic garbage, frozen) or full_collect_s has passed since the last."""
        now, forecaster = time.monotonic(), self.service.forecaster
        full = forecaster is not self._forecaster or now - self._full_at >= self.full_collect_s
        settle_memory(full)
        if full:
            self._full_at, self._forecaster = now, forecaster

    def _housekeeping(self) -> None:
        try:
            self.service.housekeeping()
        except Exception:
            logger.exception("scoring risk again or forgetting silent servers failed")

    def _save(self) -> None:
        try:
            self.save()
        except Exception:
            logger.exception("saving the daemon state failed; will retry")


class WalFlusher:
    """fsyncs the write-ahead log every every_s, in one call for every frame written since
    (a group commit). /feed answers once its frame is written to the OS, so a killed
    daemon loses nothing; a host crash or power cut loses at most every_s of records.

    After a failed fsync the log refuses records (/feed answers 503, /health says why)
    until recover() (a snapshot) holds what the failed segments held; it is called at
    once, then again with a doubling delay, up to RECOVER_MAX_S, while it fails."""

    def __init__(
        self, wal: WriteAheadLog, every_s: float, *, recover: Callable[[], None] | None = None
    ) -> None:
        self.wal, self.every_s, self.recover = wal, every_s, recover
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wal-flusher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.wal.sync()
            except WriteAheadLogError:  # logged by the log itself; /feed now answers 503
                if self.recover is None:
                    return
                self._recover()

    def _recover(self) -> None:
        delay = self.every_s
        while self.wal.failed and not self._stop.is_set():
            try:
                self.recover()
            except Exception:
                logger.exception(
                    "snapshot to recover the write-ahead log failed; /feed answers 503 until "
                    "one succeeds; retrying in %.0f s",
                    delay,
                )
            if self.wal.failed:
                self._stop.wait(delay)
                delay = min(2 * delay, RECOVER_MAX_S)


def settle_memory(full: bool = False) -> None:
    """After a pass (or a restore): keep the cyclic garbage collector off the long-lived
    cache, and hand memory freed by the pass (the model's activations) back to the OS.

    gc.freeze(): a full collection walking 1,000 servers' cached forecasts paused a
    /predict for 350 ms; frozen objects are still freed by reference counting. gc.collect()
    just before it: cyclic garbage not yet collected would be frozen too, and kept forever
    (measured: all of it, 2 MB a pass for 500 small cycles). As everything older is
    frozen, it walks only the objects made since the last freeze: 0.2 ms after a
    1,000-server pass. full: gc.unfreeze() first, so that it also frees frozen objects
    that became cyclic garbage later (a model dropped by a reload, 16,000 objects): one
    full collection, 220-350 ms. malloc_trim: glibc keeps freed heap pages, so RSS would
    stay at the pass's peak (a no-op elsewhere)."""
    started = time.perf_counter()
    if full:
        gc.unfreeze()
    freed = gc.collect()
    gc.freeze()
    if full:
        logger.info(
            "full garbage collection: %d objects freed in %.0f ms",
            freed,
            1000 * (time.perf_counter() - started),
        )
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
