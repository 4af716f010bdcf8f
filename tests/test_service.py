"""The forecast pass (chunked, honest about failures) and the work between passes: risk
scored again from the latest tick, steps closed by the clock, silent servers forgotten."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import orjson
import pytest

from inference.forecast import SeasonalNaiveForecaster
from inference.service import InferenceService
from tests.daemon_helpers import T0, Clock, make_record, steps_body


class FailsOnSecondCall(SeasonalNaiveForecaster):
    calls = 0

    def forecast(self, *args: Any) -> np.ndarray:
        self.calls += 1
        if self.calls == 2:
            raise RuntimeError("model exploded")
        return super().forecast(*args)


def test_a_failed_chunk_keeps_its_servers_and_the_rest_for_the_next_pass() -> None:
    service = InferenceService(forecaster=FailsOnSecondCall(), chunk_size=2)
    service.feed(steps_body(["a", "b", "c", "d", "e"], 289))
    with pytest.raises(RuntimeError, match="exploded"):
        service.run_pass()
    assert sorted(service.cache) == [0, 1]  # the first chunk was stored
    assert service.stats.failures == 1 and "exploded" in service.stats.error
    assert service.run_pass() == 3  # c, d, e again; then the error is cleared
    assert len(service.cache) == 5 and service.stats.error is None


def test_a_model_swapped_during_a_pass_discards_its_results() -> None:
    service = InferenceService(forecaster=SeasonalNaiveForecaster())
    service.feed(steps_body(["a"], 289))
    old = service.forecaster

    class SwapsMidway(SeasonalNaiveForecaster):
        def forecast(self, *args: Any) -> np.ndarray:
            service.swap_forecaster(old)
            return super().forecast(*args)

    service.swap_forecaster(SwapsMidway())
    service.run_pass()
    assert service.cache == {} and service.buffers.view("dirty").all()


def quiet_service(clock: Clock, **changes: Any) -> InferenceService:
    service = InferenceService(forecaster=SeasonalNaiveForecaster(), clock=clock, **changes)
    service.feed(steps_body(["a", "b"], 289))
    service.run_pass()
    return service


def test_the_risk_is_scored_from_the_latest_tick_between_passes() -> None:
    clock = Clock()
    service = quiet_service(clock)
    before = service.cache[0]
    assert before.assessment.level == "healthy" and service.rescore() == 0
    clock.now += 10  # 20 s after the step ended: it is still open (grace 30 s)
    hot = make_record("a", T0 + 288 * 300 + 20, mem_used_pct=97.0)  # in the open step
    service.feed(orjson.dumps([hot]))
    assert service.run_pass() == 0  # no step closed: the forecast stays
    assert service.rescore() == 1  # only "a" got a tick
    after = service.cache[0]
    assert after.assessment.level == "critical" and after.since == clock.now
    factor = after.assessment.factors[0]
    assert (factor["metric"], factor["basis"], factor["value"]) == ("mem_used_pct", "current", 97)
    assert b'"risk_level":"critical"' in after.risk_json
    assert service.cache[1].assessment.level == "healthy"
    assert service.rescore() == 0  # scored already


def test_a_pass_scores_the_current_values_from_the_latest_tick() -> None:
    clock = Clock()
    service = InferenceService(forecaster=SeasonalNaiveForecaster(), clock=clock)
    body = orjson.loads(steps_body(["a"], 289))
    body.append(make_record("a", T0 + 288 * 300 + 5, mem_used_pct=97.0))  # open step
    service.feed(orjson.dumps(body))
    service.run_pass()
    assert service.cache[0].assessment.level == "critical"


def test_a_source_sending_one_record_per_step_is_forecast_from_its_newest_step() -> None:
    clock = Clock(T0 + 289 * 300 + 29)  # 29 s after the newest step ended
    service = quiet_service(clock)
    assert service.cache[0].origin == T0 // 300 + 287
    clock.now += 1  # the grace (TFT_CLOSE_GRACE_S, 30 s) has passed: the step closes
    assert service.run_pass() == 2
    assert service.cache[0].origin == T0 // 300 + 288


def test_servers_silent_past_evict_after_are_forgotten_and_rows_renumbered() -> None:
    clock = Clock()
    service = quiet_service(clock, evict_after_s=3600)
    clock.now += 1800
    service.feed(steps_body(["b"], 1, T0 + 289 * 300))  # b still reports, a does not
    kept = service.cache[1]
    assert service.evict() == []
    clock.now += 1801
    assert service.evict() == ["a"]
    assert service.buffers.names == ["b"] and list(service.cache) == [0]
    assert service.cache[0] is kept and service.feed_stats.evicted_servers == 1
    assert service.feed(steps_body(["a"], 1, T0 + 289 * 300)).new_servers == 1


def test_stale_and_rejected_records_are_counted_and_logged_as_warnings(
    caplog: pytest.LogCaptureFixture,
) -> None:
    service = InferenceService(forecaster=SeasonalNaiveForecaster(), clock=Clock())
    service.feed(steps_body(["a"], 289))
    old = make_record("a", T0 - 300)  # before the 24-hour window
    bad = make_record("a", T0, state="melted")
    with caplog.at_level(logging.WARNING, logger="inference.feed"):
        result = service.feed(orjson.dumps([old, bad]))
    assert (result.stale, result.rejected, result.status) == (1, 1, "partial")
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("1 of 2 records are stale" in m for m in messages)
    assert any("rejected 1 of 2 records" in m and "state" in m for m in messages)
    assert (service.feed_stats.stale, service.feed_stats.rejected) == (1, 1)


def test_the_fast_feed_applies_only_bodies_the_fast_path_takes_whole() -> None:
    """The event loop applies a body only if no record needs the contract's model; any
    other body is left untouched for feed() in the thread pool."""
    service = InferenceService(forecaster=SeasonalNaiveForecaster())
    mixed = orjson.dumps([make_record("a", T0), make_record("b", T0, cpu_user_pct="5")])
    assert service.feed_fast(mixed) is None and len(service.buffers) == 0
    assert service.feed_fast(steps_body(["a"], 2)).applied == 2
    assert service.feed(mixed).applied == 1  # "a" at T0 is a duplicate now
