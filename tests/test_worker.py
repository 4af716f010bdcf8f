"""settle_memory() and the forecast worker's use of it: the cyclic garbage of a pass is
freed before the freeze (which would otherwise keep it forever), and a full collection
frees what became garbage after its freeze (a model dropped by a reload)."""

from __future__ import annotations

import gc
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from inference import worker as worker_module
from inference.ingest import parse_feed
from inference.wal import WriteAheadLog
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
