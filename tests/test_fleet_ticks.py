"""Tests of rows with the daemon's step statistics (fleet.ticks): generated rows against
FleetBuffers' steps of a day of real 5-second ticks, and the sub-tick arithmetic."""

from __future__ import annotations

import numpy as np
import pytest

import data_contract as dc
from fleet import ticks as ft
from fleet.simulator import FleetSimulator
from inference.buffers import FleetBuffers
from inference.ingest import STATE_CODES, Batch
from inference.windows import window_values
from tests.fleet_helpers import DAY, quiet

COL = {c: i for i, c in enumerate(dc.METRIC_COLUMNS)}


# Tolerances of the day's statistics, relative (with an absolute floor for near-zero
# metrics). The two sides are different realisations of the same fleet (the slow noise is
# drawn anew), which accounts for up to about 4 % on the means and 5 % on the stds.
MEAN_TOL, STD_TOL, ROUGH_TOL, FLOOR = 0.06, 0.08, 0.08, 0.02


def _daemon_steps(n: int, seed: int) -> np.ndarray:
    """(n, DAY, 14): what FleetBuffers builds from a day of the simulator's 5-second ticks."""
    ticks = quiet(FleetSimulator(n, seed, 5, mix="realistic")).advance(DAY * 60 + 1)
    seconds = ticks["timestamp"].astype("int64").to_numpy() // 10**9
    states = ticks["state"].map(STATE_CODES).to_numpy(np.int8)
    values = ticks[list(dc.METRIC_COLUMNS)].to_numpy(np.float64)
    buffers = FleetBuffers(encoder_length=DAY)
    buffers.apply(Batch(list(ticks["server_name"]), seconds, states, values), 0.0)
    assert buffers.ready().all()
    steps, _ = window_values(buffers.snapshot(np.arange(n)))
    return steps.astype(np.float64)


def _training_rows(n: int, seed: int, tick: int | None) -> np.ndarray:
    sim = quiet(FleetSimulator(n, seed, 300, mix="realistic", tick_seconds=tick))
    frame = sim.advance(DAY)  # by server, then timestamp
    return frame[list(dc.METRIC_COLUMNS)].to_numpy(np.float64).reshape(n, DAY, -1)


def _day_stats(steps: np.ndarray) -> dict[str, np.ndarray]:
    """Per metric over (server, step): mean, std, and roughness (std of step changes)."""
    return {
        "mean": steps.mean(axis=(0, 1)),
        "std": steps.std(axis=(0, 1)),
        "rough": np.diff(steps, axis=1).std(axis=1).mean(axis=0),
    }


def _misses(got: dict, want: dict) -> list[str]:
    out = []
    for stat, tol in (("mean", MEAN_TOL), ("std", STD_TOL), ("rough", ROUGH_TOL)):
        for metric, i in COL.items():
            g, w = got[stat][i], want[stat][i]
            if abs(g - w) > tol * abs(w) + FLOOR * (stat != "mean" or abs(w) < 1):
                out.append(f"{metric} {stat}: rows {g:.4g}, daemon {w:.4g}")
    return out


def test_training_rows_have_the_daemons_step_statistics() -> None:
    """Same fleet and day: rows of generate_fleet's default (5 s ticks aggregated into 300 s
    steps) against FleetBuffers' steps of the 5 s ticks streamed; one sample per step (the
    old rows) misses the close-wait peaks (about half) and is far too rough."""
    daemon = _day_stats(_daemon_steps(40, 3))
    assert _misses(_day_stats(_training_rows(40, 3, 5)), daemon) == []
    raw = _day_stats(_training_rows(40, 3, None))
    missed = _misses(raw, daemon)
    for metric in ("back_close_wait", "front_close_wait"):
        assert f"{metric} mean" in " ".join(missed)
        assert raw["mean"][COL[metric]] < 0.6 * daemon["mean"][COL[metric]]
    assert sum("rough" in m for m in missed) >= 8


@pytest.mark.parametrize(("tick", "subticks", "expected"), [(5, 4, (60, 4)), (60, 4, (5, 1))])
def test_subticks_divide_the_ticks_of_a_step(tick: int, subticks: int, expected: tuple) -> None:
    assert ft.subticks(300, tick, subticks) == expected
    assert ft.subticks(300, None, 4) == ft.subticks(300, 300, 4) == (1, 1)
    with pytest.raises(ValueError):
        FleetSimulator(3, tick_seconds=7)
    with pytest.raises(ValueError):
        FleetSimulator(3, mix="nope")
