"""The forecast pass: chunked, and honest about failures."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from inference.forecast import SeasonalNaiveForecaster
from inference.service import InferenceService
from tests.daemon_helpers import steps_body


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
