"""Reading the step buffers (inference/buffer_reads.py): warmup, readiness, steps closed by
the wall clock, and which servers are due a forecast."""

from __future__ import annotations

import numpy as np

from inference.buffers import FleetBuffers
from tests.buffer_helpers import T0, batch


def test_warmup_needs_encoder_length_closed_steps() -> None:
    buffers = FleetBuffers(encoder_length=10)
    buffers.apply(batch([("a", T0 + 300 * k, 1.0, "healthy") for k in range(10)]), 0.0)
    buffers.apply(batch([("b", T0 + 300 * k, 1.0, "healthy") for k in range(11)]), 0.0)
    np.testing.assert_allclose(buffers.warmup_progress(), [0.9, 1.0])
    assert buffers.ready().tolist() == [False, True]
    assert buffers.take_due().tolist() == [1]


def test_a_step_closes_by_the_wall_clock_after_the_grace() -> None:
    buffers = FleetBuffers(encoder_length=3, close_grace_s=30)
    buffers.apply(batch([("a", T0 + 300 * k, 1.0, "healthy") for k in range(4)]), 0.0)
    end = T0 + 300 * 4  # the end of the newest step (3)
    s0 = T0 // 300
    assert buffers.origins(end + 29).tolist() == [s0 + 2]
    assert buffers.take_due(end + 29).tolist() == [0]
    assert buffers.take_due(end + 29).tolist() == []
    assert buffers.origins(end + 30).tolist() == [s0 + 3]
    assert buffers.take_due(end + 30).tolist() == [0]  # forecast from the newest step now
    assert buffers.snapshot(np.array([0]), end + 30).last_step.tolist() == [s0 + 3]
    # a late tick into that step (closed by the clock) asks for a new forecast
    buffers.apply(batch([("a", T0 + 300 * 3 + 100, 1.0, "healthy")]), end + 40)
    assert buffers.take_due(end + 40).tolist() == [0]
    # the next tick opens step 4: same origin, nothing changed, no new forecast
    buffers.apply(batch([("a", end, 1.0, "healthy")]), end + 50)
    assert buffers.take_due(end + 50).tolist() == []


def test_readiness_needs_the_observed_share_of_the_window() -> None:
    buffers = FleetBuffers(encoder_length=10, min_observed_share=0.8)
    steps = [k for k in range(11) if k not in (3, 6)]  # 8 of the 10 closed steps observed
    buffers.apply(batch([("a", T0 + 300 * k, 1.0, "healthy") for k in steps]), 0.0)
    buffers.apply(batch([("b", T0 + 300 * k, 1.0, "healthy") for k in (0, 10)]), 0.0)
    np.testing.assert_allclose(buffers.observed_share(), [0.8, 0.1])
    assert buffers.ready().tolist() == [True, False]  # b: back after a gap, 1 step observed
    np.testing.assert_allclose(buffers.warmup_progress(), [1.0, 1.0])
