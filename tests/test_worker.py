"""settle_memory() and the forecast worker's use of it: the cyclic garbage of a pass is
freed before the freeze (which would otherwise keep it forever), and a full collection
frees what became garbage after its freeze (a model dropped by a reload)."""

from __future__ import annotations

import errno
import gc
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inference import views
from inference import wal as wal_module
from inference import worker as worker_module
from inference.buffers import FleetBuffers
from inference.forecast import SeasonalNaiveForecaster
from inference.ingest import parse_feed
from inference.persistence import restore_state, save_state
from inference.service import InferenceService
from inference.wal import WriteAheadLog, WriteAheadLogError
from inference.worker import ForecastWorker, WalFlusher, settle_memory
from tests.daemon_helpers import steps_body


class Node:
    """A reference cycle: only the cyclic garbage collector can free it."""

    def __init__(self) -> None:
        self.me = self
        self.payload = bytearray(1024)


@pytest.fixture(autouse=True)
def thawed() -> Iterator[None]:
    """Leave the interpreter as found: nothing frozen, automatic collection on."""
    yield
    gc.enable()
    gc.unfreeze()
    gc.collect()


def dead_cycles(n: int) -> list[weakref.ref]:
    """n cycles that are garbage, not yet collected (automatic collection is off)."""
    gc.disable()
    return [weakref.ref(Node()) for _ in range(n)]


def alive(refs: list[weakref.ref]) -> int:
    return sum(ref() is not None for ref in refs)


def test_a_bare_freeze_keeps_uncollected_cycles_forever() -> None:
    """Why settle_memory collects first: the old settle_memory (gc.freeze() alone)."""
    refs = dead_cycles(100)
    gc.freeze()
    gc.collect()
    assert alive(refs) == 100  # frozen: no collection reaches them any more


def test_cycles_made_before_settle_memory_are_freed() -> None:
    refs = dead_cycles(100)
    settle_memory()
    assert alive(refs) == 0
    frozen = gc.get_freeze_count()
    for _ in range(20):  # passes that each leave cyclic garbage: nothing piles up
        dead_cycles(100)
        settle_memory()
    assert gc.get_freeze_count() - frozen < 100


def test_a_full_settle_frees_cycles_that_died_after_their_freeze() -> None:
    kept = [Node() for _ in range(50)]
    refs = [weakref.ref(node) for node in kept]
    settle_memory()  # alive: frozen with the cache
    del kept
    settle_memory()
    assert alive(refs) == 50  # a frozen cycle is out of reach of the usual collection
    settle_memory(full=True)
    assert alive(refs) == 0
    assert gc.get_freeze_count() > 0  # frozen again afterwards


class FakeService:
    """What ForecastWorker uses of InferenceService for a pass."""

    def __init__(self) -> None:
        self.forecaster: Any = object()

    def run_pass(self) -> int:
        return 3


def test_the_worker_collects_fully_after_a_reload_or_after_full_collect_s(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[bool] = []
    monkeypatch.setattr(worker_module, "settle_memory", lambda full=False: calls.append(full))
    service = FakeService()
    forecast_worker = ForecastWorker(service)  # type: ignore[arg-type]
    forecast_worker._forecast()
    service.forecaster = object()  # /admin/reload-model replaced the model
    forecast_worker._forecast()
    forecast_worker._forecast()
    assert calls == [False, True, False]
    hourly = ForecastWorker(service, full_collect_s=0.0)  # type: ignore[arg-type]
    hourly._forecast()
    assert calls[-1] is True


def test_the_wal_flusher_fsyncs_what_was_written_and_stops(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path / "wal")
    seq = wal.append(parse_feed(steps_body(["a"], 2)), 0.0)
    assert wal.durable < seq  # written to the OS, not yet synced
    flusher = WalFlusher(wal, every_s=0.05)
    flusher.start()
    deadline = time.monotonic() + 10
    while wal.durable < seq and time.monotonic() < deadline:
        time.sleep(0.01)
    flusher.stop()
    assert wal.durable >= seq and not flusher._thread.is_alive()
    wal.close()


def test_after_a_failed_fsync_a_snapshot_recovers_the_log_and_nothing_is_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The audit's reproduction: the log's second fsync fails once with EIO. /feed
    refuses (503) and /health says why until the flusher's snapshot holds the records;
    then /feed works again, and a restart restores every applied record."""
    state = tmp_path / "state"
    service = InferenceService(forecaster=SeasonalNaiveForecaster(), buffers=FleetBuffers(288))
    service.wal = wal = WriteAheadLog(state / "wal")
    syncs, real_sync = [], wal_module._sync

    def second_fsync_fails(fd: int) -> None:
        syncs.append(fd)
        if len(syncs) == 2:
            raise OSError(errno.EIO, "Input/output error")
        real_sync(fd)

    monkeypatch.setattr(wal_module, "_sync", second_fsync_fails)
    gate = threading.Event()  # holds the recovery back, so that the failed state is seen

    def recover() -> None:
        gate.wait(10)
        save_state(service, state, wal)

    flusher = WalFlusher(wal, every_s=0.01, recover=recover)
    flusher.start()
    service.feed(steps_body(["a"], 10))
    wait_until(lambda: wal.durable >= 1)
    service.feed(steps_body(["b"], 10))
    wait_until(lambda: wal.failed is not None)
    with pytest.raises(WriteAheadLogError, match="may not be on disk"):
        service.feed(steps_body(["c"], 10))  # the app answers 503: the sender retries
    health = views.health(service)
    assert health["status"] == "degraded" and "Input/output error" in health["wal"]["error"]
    gate.set()
    wait_until(lambda: wal.failed is None)
    service.feed(steps_body(["c"], 10))  # the retry
    wait_until(lambda: wal.durable == wal.appended)
    assert views.health(service)["wal"]["error"] is None
    flusher.stop()
    wal.close()
    again = InferenceService(forecaster=SeasonalNaiveForecaster(), buffers=FleetBuffers(288))
    assert restore_state(again, state, WriteAheadLog(state / "wal"))
    assert again.buffers.names == ["a", "b", "c"]
    np.testing.assert_array_equal(again.buffers.view("count"), service.buffers.view("count"))


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)
