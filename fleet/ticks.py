"""Rows with the daemon's step statistics, without simulating every tick.

The inference daemon aggregates the 5-second ticks of each 5-minute step by the data
contract's rule (data_contract.AGGREGATION: gauges averaged, close-wait counts maxed, the
last tick's uptime and state). A training row should carry the same statistics, but
simulating all 60 ticks of each step costs 60 times one sample. Instead the simulator
(fleet.simulator.FleetSimulator with tick_seconds) simulates S sub-ticks per step
(default 4) and aggregates them by the rule (data_contract.aggregate_ticks):
- the step's conditions (activity, incidents, behaviours) are shared by its sub-ticks;
  behaviours change on a 5-minute grid, so that is exact;
- a sub-tick stands for G = ticks / S ticks: its white noise is that of the mean of G
  ticks for gauges (standard normals scaled by 1/sqrt(G)), so the mean of S sub-ticks has
  the variance of the mean of 60 ticks; for the close-wait counts, which are monotone in
  their noise, it is the max of G standard normals, so the max over S sub-ticks is exactly
  the max over 60 ticks;
- the AR(1) noise is its mean over the step, drawn from its exact distribution given the
  values at the step's ends (step_means): the daemon's 5-minute means of it, in law;
- the state is the last sub-tick's (the daemon keeps the last tick's).
Cost: about 4-5x one sample per step, not 60x (200 servers x 30 days: about 7 s instead
of 1.5 s, on 2 busy cores). tests/test_fleet_ticks.py checks the rows against
FleetBuffers' steps of a day of real 5-second ticks.
"""

from __future__ import annotations

import numpy as np

from fleet import Array
from fleet.noise import COUNTER_WHITE, N_WHITE, step_mean_var

DAEMON_TICK_S = 5  # the live daemon's tick: training rows aggregate ticks of this length
SUBTICKS = 4  # sub-ticks simulated per aggregated step
COUNTER_CHANNELS = list(COUNTER_WHITE)  # white channels of the close-wait counts


def subticks(step_s: int, tick_s: int | None, wanted: int) -> tuple[int, int]:
    """(ticks per step, sub-ticks per step): sub-ticks the largest divisor <= wanted."""
    if tick_s is None or tick_s >= step_s:
        return 1, 1
    if tick_s < 1 or step_s % tick_s or wanted < 1:
        raise ValueError(f"tick_seconds must divide step_seconds {step_s}, got {tick_s}")
    ticks = step_s // tick_s
    return ticks, max(d for d in range(1, min(wanted, ticks) + 1) if ticks % d == 0)


def subtick_white(rng: np.random.Generator, shape: tuple[int, int], ticks: int, subs: int) -> Array:
    """(BLOCK, S, n, N_WHITE) noise of sub-ticks standing for G = ticks / S ticks each: the
    mean of G standard normals for gauges, the max of G for the close-wait channels."""
    group = ticks // subs
    white = rng.standard_normal((shape[0], subs, shape[1], N_WHITE)) / np.sqrt(group)
    size = (shape[0], subs, shape[1], len(COUNTER_CHANNELS), group)
    peaks = rng.standard_normal(size, dtype=np.float32)  # the bulk of the draws: float32
    white[..., COUNTER_CHANNELS] = peaks.max(axis=-1)
    return white


def step_means(ar: Array, previous: Array, bridge: Array, ratio: Array) -> Array:
    """The unit AR(1) series' means over each step, given its values at the step's ends
    (ratio = step / time constant, bridge standard normals): the conditional mean
    beta * (sum of the ends) plus the conditional spread, exact for an Ornstein-Uhlenbeck
    process, so even fast channels (time constant near the step) have the daemon's means."""
    before = np.concatenate([previous[None], ar[:-1]])
    decay = np.exp(-ratio)
    beta = -np.expm1(-ratio) / (ratio * (1 + decay))  # cov(end, mean) / var(sum of the ends)
    spread = step_mean_var(ratio) - 2 * beta**2 * (1 + decay)
    return beta * (before + ar) + bridge * np.sqrt(np.maximum(spread, 0.0))
