"""Ticks into steps (inference/buffer_ingest.py): the aggregation rule, idempotent
duplicates, out-of-order and late ticks, stale ticks."""

from __future__ import annotations

import numpy as np
import pytest

import data_contract as dc
from inference.buffers import FleetBuffers
from inference.ingest import STATE_CODES
from inference.windows import window_values
from tests.buffer_helpers import COL, T0, batch, step_values


def test_aggregation_rule_mean_max_last_by_timestamp() -> None:
    buffers = FleetBuffers(encoder_length=4)
    # arrival order is not time order: the 10.0 tick is the latest of the step
    buffers.apply(batch([("a", T0 + 200, 10.0, "heavy_load"), ("a", T0 + 5, 4.0, "healthy")]), 0.0)
    buffers.apply(batch([("a", T0 + 100, 1.0, "idle"), ("a", T0 + 300, 7.0, "healthy")]), 0.0)
    values = step_values(buffers, "a")
    assert values[COL["cpu_user_pct"]] == pytest.approx(5.0)  # mean of 10, 4, 1
    assert values[COL["back_close_wait"]] == 10.0 and values[COL["front_close_wait"]] == 10.0
    assert values[COL["uptime_days"]] == 10.0  # last by timestamp
    row, slot = buffers.index["a"], (T0 // 300) % buffers.ring
    assert dc.VALID_STATES[buffers.view("state")[row, slot]] == "heavy_load"
    current = buffers.view("cur_values")[row]
    assert current[0] == 7.0 and buffers.view("cur_sec")[row] == T0 + 300


def test_duplicates_are_idempotent_and_counted() -> None:
    buffers = FleetBuffers(encoder_length=4)
    ticks = [("a", T0 + 5 * i, float(i), "healthy") for i in range(70)]
    first = buffers.apply(batch(ticks), 0.0)
    before = {name: buffers.view(name).copy() for name in buffers.arrays}
    again = buffers.apply(batch(ticks + ticks[:3]), 0.0)  # a retry, with copies inside it too
    assert (first.applied, first.duplicates) == (70, 0)
    assert (again.received, again.applied, again.duplicates, again.stale) == (73, 0, 73, 0)
    for name, array in before.items():
        np.testing.assert_array_equal(buffers.view(name), array, err_msg=name)


def test_same_second_is_the_same_tick_first_copy_wins() -> None:
    buffers = FleetBuffers(encoder_length=4)
    result = buffers.apply(batch([("a", T0, 1.0, "healthy"), ("a", T0, 9.0, "healthy")]), 0.0)
    assert (result.applied, result.duplicates) == (1, 1)
    buffers.apply(batch([("a", T0 + 300, 0.0, "healthy")]), 0.0)
    assert step_values(buffers, "a")[0] == 1.0


def test_late_ticks_land_in_their_step_and_ask_for_a_new_forecast() -> None:
    buffers = FleetBuffers(encoder_length=2)
    buffers.apply(batch([("a", T0 + 300 * k, 10.0, "healthy") for k in range(4)]), 0.0)
    assert buffers.take_due().tolist() == [0]
    buffers.apply(batch([("a", T0 + 901, 10.0, "healthy")]), 0.0)  # the open step: no new forecast
    assert buffers.take_due().tolist() == []
    buffers.apply(batch([("a", T0 + 300 + 60, 40.0, "healthy")]), 0.0)  # late, into a closed step
    assert buffers.take_due().tolist() == [0]
    assert step_values(buffers, "a", steps_back=2)[0] == pytest.approx(25.0)


def test_late_ticks_are_taken_anywhere_in_the_window() -> None:
    buffers = FleetBuffers(encoder_length=288, late_steps=36)
    buffers.apply(batch([("a", T0 + 300 * 100, 1.0, "healthy")]), 0.0)
    late = buffers.apply(batch([("a", T0 + 300 * 65, 1.0, "healthy")]), 0.0)
    assert (late.applied, late.stale) == (1, 0)  # within the late window: exact dedup
    # 4 hours back, beyond the late window: an empty step, then ticks in time order
    older = buffers.apply(batch([("a", T0 + 300 * 52 + s, 1.0, "idle") for s in (0, 5)]), 0.0)
    assert (older.applied, older.stale) == (2, 0)
    assert buffers.view("count")[0, (T0 // 300 + 52) % buffers.ring] == 2
    # not later than the step's newest tick: a copy or not, it cannot be told: stale
    again = buffers.apply(batch([("a", T0 + 300 * 52 + 5, 1.0, "idle")]), 0.0)
    earlier = buffers.apply(batch([("a", T0 + 300 * 52 + 2, 1.0, "idle")]), 0.0)
    assert (again.applied, again.stale, earlier.stale) == (0, 1, 1)
    assert buffers.view("count")[0, (T0 // 300 + 52) % buffers.ring] == 2
    # in time order within one batch nothing is late: a day of history in one POST
    history = buffers.apply(batch([("b", T0 + 300 * k, 1.0, "healthy") for k in range(289)]), 0.0)
    assert history.applied == 289


def test_late_data_fills_the_window_a_host_missed() -> None:
    buffers = FleetBuffers(encoder_length=10, late_steps=2)
    buffers.apply(batch([("a", T0 + 300 * k, 1.0, "healthy") for k in (0, 1, 9, 10)]), 0.0)
    assert not buffers.ready()[0]  # 4 of 10 steps observed
    result = buffers.apply(batch([("a", T0 + 300 * k, 1.0, "healthy") for k in range(2, 9)]), 0.0)
    assert (result.applied, result.stale) == (7, 0)
    assert buffers.ready()[0]


def test_a_retry_together_with_newer_ticks_is_still_idempotent() -> None:
    buffers = FleetBuffers(encoder_length=288, late_steps=36)
    buffers.apply(batch([("a", T0 + 300 * 100, 5.0, "healthy")]), 0.0)
    result = buffers.apply(
        batch([("a", T0 + 300 * 100, 5.0, "healthy"), ("a", T0 + 300 * 130, 1.0, "healthy")]),
        0.0,
    )
    assert (result.applied, result.duplicates) == (1, 1)
    assert buffers.view("count")[0].sum() == 2


def test_ticks_older_than_the_ring_are_stale() -> None:
    buffers = FleetBuffers(encoder_length=3)  # ring of 4 steps
    buffers.apply(batch([("a", T0 + 300 * 10, 1.0, "healthy")]), 0.0)
    result = buffers.apply(
        batch([("a", T0 + 300 * 7, 1.0, "healthy"), ("a", T0 + 300 * 6, 1.0, "healthy")]),
        0.0,
    )
    assert (result.applied, result.stale) == (1, 1)


def test_a_jump_past_the_ring_clears_old_steps() -> None:
    buffers = FleetBuffers(encoder_length=3)
    buffers.apply(batch([("a", T0 + 300 * k, 5.0, "healthy") for k in range(5)]), 0.0)
    buffers.apply(batch([("a", T0 + 300 * 100, 9.0, "healthy")]), 0.0)
    assert buffers.view("count")[0].sum() == 1
    values, states = window_values(buffers.snapshot(np.array([0])))
    assert (states == STATE_CODES["offline"]).all()  # 3 empty closed steps
    assert (values == 9.0).all()  # nothing before them in the ring: the next value fills
