"""Step buffers: the aggregation rule, idempotent duplicates, out-of-order ticks, warmup,
gap filling as training does it, and the fleet limit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import data_contract as dc
import metrics_generator as mg
from inference.buffers import AGGREGATION, FleetBuffers, window_values
from inference.ingest import STATE_CODES, Batch, FeedRejected
from training import dataset as tds

T0 = 1_750_000_200  # a step boundary (divisible by 300)
COL = {name: i for i, name in enumerate(dc.METRIC_COLUMNS)}


def batch(ticks: list[tuple[str, int, float, str]]) -> Batch:
    """(server, epoch seconds, value for every metric, state) ticks."""
    values = np.array([[v] * len(dc.METRIC_COLUMNS) for _, _, v, _ in ticks], dtype=np.float64)
    return Batch(
        names=[t[0] for t in ticks],
        seconds=np.array([t[1] for t in ticks], dtype=np.int64),
        states=np.array([STATE_CODES[t[3]] for t in ticks], dtype=np.int8),
        values=values.reshape(len(ticks), len(dc.METRIC_COLUMNS)),
    )


def step_values(buffers: FleetBuffers, server: str, steps_back: int = 1) -> np.ndarray:
    """Aggregated values of the closed step steps_back before the head (after the mean)."""
    row = buffers.index[server]
    slot = (buffers.view("head")[row] - steps_back) % buffers.ring
    count = buffers.view("count")[row, slot]
    values = buffers.view("agg")[row, slot].astype(np.float64)
    mean = [COL[c] for c, rule in AGGREGATION.items() if rule == "mean"]
    values[mean] /= count
    return values


def test_aggregation_rule_mean_max_last_by_timestamp() -> None:
    buffers = FleetBuffers(encoder_length=4)
    # arrival order is not time order: the 10.0 tick is the latest of the step
    buffers.apply(batch([("a", T0 + 200, 10.0, "heavy_load"), ("a", T0 + 5, 4.0, "healthy")]))
    buffers.apply(batch([("a", T0 + 100, 1.0, "idle"), ("a", T0 + 300, 7.0, "healthy")]))
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
    first = buffers.apply(batch(ticks))
    before = {name: buffers.view(name).copy() for name in buffers.arrays}
    again = buffers.apply(batch(ticks + ticks[:3]))  # a retry, with copies inside it too
    assert (first.applied, first.duplicates) == (70, 0)
    assert (again.received, again.applied, again.duplicates, again.stale) == (73, 0, 73, 0)
    for name, array in before.items():
        np.testing.assert_array_equal(buffers.view(name), array, err_msg=name)


def test_same_second_is_the_same_tick_first_copy_wins() -> None:
    buffers = FleetBuffers(encoder_length=4)
    result = buffers.apply(batch([("a", T0, 1.0, "healthy"), ("a", T0, 9.0, "healthy")]))
    assert (result.applied, result.duplicates) == (1, 1)
    buffers.apply(batch([("a", T0 + 300, 0.0, "healthy")]))
    assert step_values(buffers, "a")[0] == 1.0


def test_late_ticks_land_in_their_step_and_ask_for_a_new_forecast() -> None:
    buffers = FleetBuffers(encoder_length=2)
    buffers.apply(batch([("a", T0 + 300 * k, 10.0, "healthy") for k in range(4)]))
    assert buffers.take_dirty().tolist() == [0]
    buffers.apply(batch([("a", T0 + 901, 10.0, "healthy")]))  # the open step: no new forecast
    assert buffers.take_dirty().tolist() == []
    buffers.apply(batch([("a", T0 + 300 + 60, 40.0, "healthy")]))  # late, into a closed step
    assert buffers.take_dirty().tolist() == [0]
    assert step_values(buffers, "a", steps_back=2)[0] == pytest.approx(25.0)


def test_late_ticks_are_taken_within_the_late_window_only() -> None:
    buffers = FleetBuffers(encoder_length=288, late_steps=36)
    buffers.apply(batch([("a", T0 + 300 * 100, 1.0, "healthy")]))
    late = buffers.apply(batch([("a", T0 + 300 * 65, 1.0, "healthy")]))
    too_late = buffers.apply(batch([("a", T0 + 300 * 64, 1.0, "healthy")]))
    assert (late.applied, too_late.stale) == (1, 1)
    # in time order within one batch nothing is late: a day of history in one POST
    history = buffers.apply(batch([("b", T0 + 300 * k, 1.0, "healthy") for k in range(289)]))
    assert history.applied == 289


def test_a_retry_together_with_newer_ticks_is_still_idempotent() -> None:
    buffers = FleetBuffers(encoder_length=288, late_steps=36)
    buffers.apply(batch([("a", T0 + 300 * 100, 5.0, "healthy")]))
    result = buffers.apply(
        batch([("a", T0 + 300 * 100, 5.0, "healthy"), ("a", T0 + 300 * 130, 1.0, "healthy")])
    )
    assert (result.applied, result.duplicates) == (1, 1)
    assert buffers.view("count")[0].sum() == 2


def test_ticks_older_than_the_ring_are_stale() -> None:
    buffers = FleetBuffers(encoder_length=3)  # ring of 4 steps
    buffers.apply(batch([("a", T0 + 300 * 10, 1.0, "healthy")]))
    result = buffers.apply(
        batch([("a", T0 + 300 * 7, 1.0, "healthy"), ("a", T0 + 300 * 6, 1.0, "healthy")])
    )
    assert (result.applied, result.stale) == (1, 1)


def test_warmup_needs_encoder_length_closed_steps() -> None:
    buffers = FleetBuffers(encoder_length=10)
    buffers.apply(batch([("a", T0 + 300 * k, 1.0, "healthy") for k in range(10)]))
    buffers.apply(batch([("b", T0 + 300 * k, 1.0, "healthy") for k in range(11)]))
    np.testing.assert_allclose(buffers.warmup_progress(), [0.9, 1.0])
    assert buffers.ready().tolist() == [False, True]
    assert buffers.take_dirty().tolist() == [1]


def test_a_jump_past_the_ring_clears_old_steps() -> None:
    buffers = FleetBuffers(encoder_length=3)
    buffers.apply(batch([("a", T0 + 300 * k, 5.0, "healthy") for k in range(5)]))
    buffers.apply(batch([("a", T0 + 300 * 100, 9.0, "healthy")]))
    assert buffers.view("count")[0].sum() == 1
    values, states = window_values(buffers.snapshot(np.array([0])))
    assert (states == STATE_CODES["offline"]).all()  # 3 empty closed steps
    assert (values == 9.0).all()  # nothing before them in the ring: the next value fills


@pytest.mark.parametrize("limit_index", [1, 2])
def test_the_fleet_limit_rejects_the_whole_batch(limit_index: int) -> None:
    buffers = FleetBuffers(encoder_length=3, max_servers=2)
    buffers.apply(batch([("a", T0, 1.0, "healthy")]))
    ticks = [("a", T0 + 5, 1.0, "healthy"), ("b", T0, 1.0, "healthy"), ("c", T0, 1.0, "healthy")]
    with pytest.raises(FeedRejected) as caught:
        buffers.apply(batch(ticks[: limit_index + 1] if limit_index == 2 else ticks))
    assert caught.value.errors[0]["index"] == 2
    assert caught.value.errors[0]["field"] == "server_name"
    assert buffers.names == ["a"] and buffers.view("count").sum() == 1


def test_windows_equal_training_preparation_with_gaps() -> None:
    frame = mg.generate_fleet(n_servers=3, days=1.3, seed=2).frame
    gap = (frame.server_name == "ppml0001") & frame.timestamp.between(
        "2025-01-06T22:00", "2025-01-06T23:00"
    )
    frame = frame[~gap]
    seconds = (frame.timestamp - pd.Timestamp("1970-01-01", tz="UTC")) // pd.Timedelta("1s")
    buffers = FleetBuffers()
    buffers.apply(
        Batch(
            names=frame.server_name.tolist(),
            seconds=seconds.to_numpy(np.int64),
            states=frame.state.map(STATE_CODES).to_numpy(np.int8),
            values=frame[list(dc.METRIC_COLUMNS)].to_numpy(np.float64),
        )
    )
    rows = buffers.take_dirty()
    assert len(rows) == 3
    snapshot = buffers.snapshot(rows)
    values, states = window_values(snapshot)
    prepared = tds.prepare_frame(frame)
    for i, name in enumerate(snapshot.servers):
        server = prepared[prepared.server_name == name].set_index("time_idx").sort_index()
        window = server.loc[snapshot.last_step[i] - 287 : snapshot.last_step[i]]
        np.testing.assert_allclose(values[i], window[list(dc.METRIC_COLUMNS)], rtol=1e-6)
        assert [dc.VALID_STATES[s] for s in states[i]] == window.state.tolist()
    assert (states[snapshot.servers.index("ppml0001")] == STATE_CODES["offline"]).sum() >= 12
