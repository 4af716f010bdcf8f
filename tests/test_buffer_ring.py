"""Step buffers' storage (inference/buffer_ring.py): the fleet limit, eviction, and a ring
widened for a longer history."""

from __future__ import annotations

import numpy as np
import pytest

from inference.buffers import FleetBuffers
from inference.windows import window_values
from tests.buffer_helpers import T0, batch


def test_the_fleet_limit_rejects_only_the_new_servers_records() -> None:
    buffers = FleetBuffers(encoder_length=3, max_servers=2)
    buffers.apply(batch([("a", T0, 1.0, "healthy")]), 0.0)
    ticks = [("a", T0 + 5, 1.0, "healthy"), ("b", T0, 1.0, "healthy"), ("c", T0, 1.0, "healthy")]
    result = buffers.apply(batch(ticks + [("c", T0 + 5, 1.0, "healthy")]), 0.0)
    assert (result.received, result.applied, result.new_servers) == (4, 2, 1)
    assert [(e["index"], e["field"]) for e in result.rejected] == [
        (2, "server_name"),
        (3, "server_name"),
    ]
    assert "TFT_MAX_SERVERS" in result.rejected[0]["problem"]
    assert buffers.names == ["a", "b"] and buffers.view("count").sum() == 3


def test_eviction_forgets_servers_by_receipt_time_and_renumbers() -> None:
    buffers = FleetBuffers(encoder_length=3, max_servers=2)
    buffers.apply(batch([("a", T0, 1.0, "healthy")]), 1000.0)
    buffers.apply(batch([("b", T0 - 86_400 * 30, 2.0, "healthy")]), 5000.0)  # old data, fresh
    keep, evicted = buffers.evict(before=2000.0)
    assert evicted == ["a"] and keep.tolist() == [1]
    assert buffers.names == ["b"] and buffers.index == {"b": 0}
    assert buffers.view("cur_values")[0, 0] == 2.0 and buffers.arrays["head"][1] == -1
    assert buffers.apply(batch([("c", T0, 3.0, "healthy")]), 6000.0).new_servers == 1  # room


def test_a_longer_history_keeps_more_steps_and_changes_nothing_else() -> None:
    """history_steps widens the ring for the early-warning evidence; readiness, the
    encoder window and staleness stay those of the encoder length."""
    plain, wide = FleetBuffers(encoder_length=10), FleetBuffers(encoder_length=10, history_steps=14)
    ticks = [("a", T0 + 300 * k, float(k), "healthy") for k in range(20) if k not in (12, 15)]
    ticks += [("b", T0 + 300 * k, 1.0, "healthy") for k in (0, 19)]
    for buffers in (plain, wide):
        buffers.apply(batch(ticks), 0.0)
    assert wide.ring == 15 and plain.ring == 11
    np.testing.assert_allclose(wide.observed_share(), plain.observed_share())
    assert wide.ready().tolist() == plain.ready().tolist() == [True, False]
    rows = np.array([0])
    for name in ("agg", "count", "state"):
        np.testing.assert_array_equal(
            getattr(wide.snapshot(rows), name), getattr(plain.snapshot(rows), name)
        )
    history, _ = window_values(wide.snapshot(rows, length=14))
    assert history[0, :, 0].tolist() == [5, 6, 7, 8, 9, 10, 11, 11, 13, 14, 14, 16, 17, 18]
    with pytest.raises(ValueError, match="keep 10"):
        plain.snapshot(rows, length=14)
