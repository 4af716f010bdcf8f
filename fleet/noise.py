"""The simulated fleet's noise channels, and what a step's mean keeps of them.

Slow noise is unit-variance AR(1) (Ornstein-Uhlenbeck) channels with the time constants
below, fast noise white channels; the daemon averages ticks over 5-minute steps, so the
variance of a step's mean (step_mean_var) sets the drawn noise levels (fleet.servers) and
the aggregated rows' AR means (fleet.ticks).
"""

from __future__ import annotations

import numpy as np

from fleet import Array

# AR(1) noise time constants: cpu fast/slow, mem (slow drift), io, net, mem fast (MEM_FAST)
AR_TAU_H = np.array([0.75, 8.0, 4.0, 0.33, 3.0, 5 / 60])
N_AR, N_WHITE = len(AR_TAU_H), 9  # unit-variance AR channels, white-noise channels
MEM_FAST = 5  # memory's short-lived noise around its level: a 5-minute time constant
MEM_NOISE = (0.5, 4.0)  # its std in the daemon's 5-minute steps, points: log-uniform per server
MEM_DRIFT = 1.5  # std of memory's slow drift (AR channel 2), points
COUNTER_WHITE = (7, 8)  # the white channels of back / front close-wait (fleet.metrics)


def step_mean_var(ratio: Array) -> Array:
    """Variance of the mean over a step of a unit-variance AR(1) (Ornstein-Uhlenbeck)
    process; ratio = step / time constant. The daemon's 5-minute means keep this share."""
    return 2 * (ratio + np.expm1(-ratio)) / ratio**2
