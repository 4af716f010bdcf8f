"""Step buffers: the aggregation rule, idempotent duplicates, out-of-order ticks, warmup,
gap filling as training does it, and the fleet limit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import data_contract as dc
import metrics_generator as mg
from inference.buffers import AGGREGATION, FleetBuffers
from inference.ingest import STATE_CODES, Batch
from inference.windows import window_values
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


def test_warmup_needs_encoder_length_closed_steps() -> None:
    buffers = FleetBuffers(encoder_length=10)
    buffers.apply(batch([("a", T0 + 300 * k, 1.0, "healthy") for k in range(10)]), 0.0)
    buffers.apply(batch([("b", T0 + 300 * k, 1.0, "healthy") for k in range(11)]), 0.0)
    np.testing.assert_allclose(buffers.warmup_progress(), [0.9, 1.0])
    assert buffers.ready().tolist() == [False, True]
    assert buffers.take_due().tolist() == [1]


def test_a_jump_past_the_ring_clears_old_steps() -> None:
    buffers = FleetBuffers(encoder_length=3)
    buffers.apply(batch([("a", T0 + 300 * k, 5.0, "healthy") for k in range(5)]), 0.0)
    buffers.apply(batch([("a", T0 + 300 * 100, 9.0, "healthy")]), 0.0)
    assert buffers.view("count")[0].sum() == 1
    values, states = window_values(buffers.snapshot(np.array([0])))
    assert (states == STATE_CODES["offline"]).all()  # 3 empty closed steps
    assert (values == 9.0).all()  # nothing before them in the ring: the next value fills


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
        ),
        0.0,
    )
    rows = buffers.take_due()
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
