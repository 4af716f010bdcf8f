"""Live accuracy of the served TFT forecasts, against last value and seasonal naive.

Each forecast pass, for the servers it forecasts (AccuracyTracker.update, under the
service lock):
1. score: every remembered forecast whose target step (origin + 6, 12 or 96) is now
   closed and has ticks is scored against that step's value, together with the two
   baselines on the same origin: last value (the value at the origin, read again from
   the window) and seasonal naive (the value 288 steps before the target, remembered
   with the forecast: the 289-step buffer no longer holds it once the target closes).
   A target step without ticks is not scored: its slot goes to the next origin;
2. record: at origins on a multiple of EVERY steps (every 15 minutes, the same steps for
   every server), the TFT's p50 and the seasonal-naive value at the three horizons.

Scores are exponentially weighted sums (weight exp(-age / 24 h), so the weights have a
mean age of 24 h): per horizon, method and metric the decayed sum of absolute errors,
and per horizon the decayed count; MAE = sum / count. MASE divides each MAE by the
server's running mean of |x_t - x_(t-288)|, which is exactly the seasonal naive's error,
pooled over the three horizons: seasonal naive scores about 1 by construction, and
MASE < 1 means better than same-time-yesterday on that server and metric.

Optionally (TFT_SERVE_BETTER_METHOD, off by default) the daemon serves, per server and
metric, a baseline that beat the TFT over the last day (better_methods, substitute);
the TFT's own forecasts are still the ones scored, so it is served again once it wins.

Everything lives in fleet-wide numpy arrays (ARRAYS), one row per server, grown with
the buffers' capacity: 2,812 bytes per server (BYTES_PER_SERVER).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

import data_contract as dc
from inference.predictions import ACCURACY_METHODS, HORIZONS

logger = logging.getLogger(__name__)

FORMAT = 1  # of the persisted arrays; another value is not restored
METHODS = ACCURACY_METHODS
EVERY = 3  # origins recorded: steps divisible by this (every 15 minutes)
PERIOD = dc.STEPS_PER_DAY  # 288: seasonal naive and the MASE scale, one day of steps
DECAY_STEPS = float(dc.STEPS_PER_DAY)  # time constant of the weights: 24 hours
MIN_SCORED = 96  # a day of origins scored at every horizon before a baseline is served
N_METRICS = len(dc.METRIC_COLUMNS)
STEPS = np.array(list(HORIZONS.values()))  # 6, 12, 96
# A ring of pending origins per horizon; an origin's slot is reused H steps later, when
# its target has just closed (scoring runs before recording): 2 + 4 + 32 slots.
SLOTS = STEPS // EVERY
OFFSETS = np.r_[0, np.cumsum(SLOTS)[:-1]]
SLOT_HORIZON = np.repeat(np.arange(len(STEPS)), SLOTS)
SLOT_STEPS = STEPS[SLOT_HORIZON]
N_SLOTS = int(SLOTS.sum())
H, M = len(STEPS), len(METHODS)
# (name, per-server shape, dtype, fill value)
ARRAYS = (
    ("origin", (N_SLOTS,), np.int32, -1),  # origin step of a pending forecast; -1: free
    ("tft", (N_SLOTS, N_METRICS), np.float16, 0),  # TFT p50 at the slot's horizon
    ("seasonal", (N_SLOTS, N_METRICS), np.float16, 0),  # value 288 steps before the target
    ("error", (H, M, N_METRICS), np.float32, 0),  # decayed sums of |error|
    ("weight", (H,), np.float32, 0),  # decayed count of scored origins
    ("scored", (H,), np.int32, 0),  # origins scored so far
    ("clock", (), np.int32, -1),  # the step error and weight are decayed to
)
BYTES_PER_SERVER = sum(int(np.prod(s)) * np.dtype(t).itemsize for _, s, t, _ in ARRAYS)
F16_MAX = float(np.finfo(np.float16).max)


class AccuracyTracker:
    """Pending forecasts and decayed error sums of every server (rows as in the buffers)."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}
        self._allocate(0)

    def __len__(self) -> int:
        return len(self.arrays["clock"])

    def _allocate(self, capacity: int) -> None:
        grown = {}
        for name, shape, dtype, fill in ARRAYS:
            grown[name] = np.full((capacity, *shape), fill, dtype=dtype)
            if name in self.arrays:
                grown[name][: len(self)] = self.arrays[name]
        self.arrays = grown

    def reserve(self, capacity: int) -> None:
        """Room for rows below capacity (the buffers' capacity: they grow together)."""
        if capacity > len(self):
            self._allocate(capacity)

    def keep(self, rows: np.ndarray, used: int) -> None:
        """Keep rows (of the first used), renumbered 0, 1, ... in this order: the buffers
        forgot the others (FleetBuffers.evict)."""
        self.reserve(used)
        for name, _, _, fill in ARRAYS:
            array = self.arrays[name]
            array[: len(rows)] = array[rows]
            array[len(rows) : used] = fill

    def reset(self) -> None:
        """Forget everything (another model serves)."""
        for name, _, _, fill in ARRAYS:
            self.arrays[name][:] = fill

    def update(
        self,
        rows: np.ndarray,
        last: np.ndarray,
        values: np.ndarray,
        observed: np.ndarray,
        trajectory: np.ndarray,
    ) -> None:
        """One pass's scoring and recording for rows (B,): last (B,) their last closed
        step, values (B, E, 14) and observed (B, E) their windows ending at last, and
        trajectory (B, 96, 14, 3) the new forecasts."""
        self.reserve(int(rows.max()) + 1 if len(rows) else 0)
        self.score(rows, last, values, observed)
        self.record(rows, last, values, trajectory[:, STEPS - 1][..., 1])

    def score(
        self, rows: np.ndarray, last: np.ndarray, values: np.ndarray, observed: np.ndarray
    ) -> None:
        """Score the pending forecasts of rows whose target has arrived (see update)."""
        start = last - values.shape[1] + 1  # the window's first step
        origin = self.arrays["origin"][rows].astype(np.int64)
        due = (origin >= 0) & (origin + SLOT_STEPS <= last[:, None])
        lost = due & (origin < start[:, None])  # the origin's value left the window
        b, s = np.nonzero(due & ~lost)
        target = origin[b, s] + SLOT_STEPS[s] - start[b]
        arrived = observed[b, target]
        b, s, target = b[arrived], s[arrived], target[arrived]
        self._decay(rows, last)
        if len(b):
            self._add(
                rows[b],
                s,
                values[b, target],
                values[b, origin[b, s] - start[b]],
                (last[b] - start[b] - target).astype(np.float32),
            )
        done = lost.copy()
        done[b, s] = True
        self.arrays["origin"][rows] = np.where(done, -1, origin)

    def _decay(self, rows: np.ndarray, last: np.ndarray) -> None:
        a = self.arrays
        clock = a["clock"][rows]
        factor = np.exp(-np.maximum(last - clock, 0) / DECAY_STEPS).astype(np.float32)
        a["error"][rows] *= factor[:, None, None, None]
        a["weight"][rows] *= factor[:, None]
        a["clock"][rows] = np.maximum(clock, last)

    def _add(
        self,
        rows: np.ndarray,
        slots: np.ndarray,
        truth: np.ndarray,
        last_value: np.ndarray,
        age: np.ndarray,
    ) -> None:
        """Add the errors of (row, slot) pairs, each weighted by its target's age."""
        a = self.arrays
        guesses = np.stack([a["tft"][rows, slots], last_value, a["seasonal"][rows, slots]], 1)
        weight = np.exp(-age / np.float32(DECAY_STEPS))
        errors = np.abs(guesses.astype(np.float32) - truth[:, None, :]) * weight[:, None, None]
        horizon = SLOT_HORIZON[slots]
        np.add.at(a["error"], (rows, horizon), errors)
        np.add.at(a["weight"], (rows, horizon), weight)
        np.add.at(a["scored"], (rows, horizon), 1)

    def record(
        self, rows: np.ndarray, last: np.ndarray, values: np.ndarray, p50: np.ndarray
    ) -> None:
        """Remember p50 (B, 3, 14) at the horizons and the seasonal-naive values, for the
        origins on a multiple of EVERY; windows shorter than a day record nothing."""
        seasonal = values.shape[1] - 1 - PERIOD + STEPS  # window index of target - 288
        take = np.flatnonzero(last % EVERY == 0)
        if values.shape[1] < PERIOD or not len(take):
            return
        rows, last = rows[take, None], last[take, None]
        slots = OFFSETS + (last // EVERY) % SLOTS
        a = self.arrays
        a["origin"][rows, slots] = last
        a["tft"][rows, slots] = np.clip(p50[take], -F16_MAX, F16_MAX)
        a["seasonal"][rows, slots] = np.clip(values[take][:, seasonal], -F16_MAX, F16_MAX)

    # --- reading ----------------------------------------------------------------------

    def report(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """MAE and MASE (n, 3 horizons, 3 METHODS, 14), NaN where undefined, and the
        scored counts (n, 3) of rows (rows past the capacity: nothing scored)."""
        rows = np.asarray(rows, dtype=np.int64)
        inside = rows[rows < len(self)]
        error = np.zeros((len(rows), H, M, N_METRICS), np.float32)
        weight, scored = np.zeros((len(rows), H), np.float32), np.zeros((len(rows), H), int)
        error[rows < len(self)] = self.arrays["error"][inside]
        weight[rows < len(self)] = self.arrays["weight"][inside]
        scored[rows < len(self)] = self.arrays["scored"][inside]
        mae = _ratio(error, weight[:, :, None, None])
        scale = _ratio(error[:, :, 2].sum(axis=1), weight.sum(axis=1)[:, None])
        mase = _ratio(mae, scale[:, None, None, :])
        return mae, mase, scored

    def better_methods(self, rows: np.ndarray) -> np.ndarray:
        """(B, 14) int8 index into METHODS of each row and metric's lowest MAE summed over
        the horizons (the TFT on ties); 0 until every horizon has MIN_SCORED scores."""
        mae, _, scored = self.report(rows)
        best = np.argmin(np.nan_to_num(mae, nan=np.inf).sum(axis=1), axis=1)
        ready = (scored >= MIN_SCORED).all(axis=1)
        return np.where(ready[:, None], best, 0).astype(np.int8)

    def summary(self, n: int, tracked: bool, chunk: int = 1024) -> dict[str, Any]:
        """The fleet's accuracy for /health, over the first n rows (in chunks of rows)."""
        mase_sum, mase_count = np.zeros((H, M)), np.zeros((H, M))
        beats, compared, scored, servers = np.zeros(H), np.zeros(H), np.zeros(H), np.zeros(H)
        for first in range(0, n, chunk):
            mae, mase, counts = self.report(np.arange(first, min(first + chunk, n)))
            finite = np.isfinite(mase)
            mase_sum += np.where(finite, mase, 0).sum(axis=(0, 3))
            mase_count += finite.sum(axis=(0, 3))
            tft, last_value = mae[:, :, 0], mae[:, :, 1]
            beats += (tft < last_value).sum(axis=(0, 2))
            compared += (np.isfinite(tft) & (tft != last_value)).sum(axis=(0, 2))
            scored += counts.sum(axis=0)
            servers += (counts > 0).sum(axis=0)
        mean_mase = _ratio(mase_sum, mase_count)
        share = _ratio(beats, compared)
        horizons = {
            label: {
                "scored": int(scored[k]),
                "servers": int(servers[k]),
                "mean_mase": {m: _number(mean_mase[k, j]) for j, m in enumerate(METHODS)},
                "tft_better_than_last_value": _number(share[k]),
            }
            for k, label in enumerate(HORIZONS)
        }
        return {"tracked": tracked, "window_h": DECAY_STEPS / 12, "horizons": horizons}

    # --- persistence ------------------------------------------------------------------

    def state(self, n: int) -> dict[str, np.ndarray]:
        """Copies of the first n rows of every array (for the state file)."""
        self.reserve(n)
        return {name: self.arrays[name][:n].copy() for name, *_ in ARRAYS}

    def load(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore state() output (checked by the caller with expected_shape)."""
        n = len(arrays["clock"])
        self.reserve(n)
        self.reset()
        for name, *_ in ARRAYS:
            self.arrays[name][:n] = arrays[name]


def expected_shape(name: str, n: int) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and dtype of state()[name] for n servers."""
    _, shape, dtype, _ = next(spec for spec in ARRAYS if spec[0] == name)
    return (n, *shape), np.dtype(dtype)


def substitute(trajectory: np.ndarray, values: np.ndarray, served: np.ndarray) -> np.ndarray:
    """trajectory (B, H, 14, 3) with each metric whose served (B, 14) is not 0 replaced,
    every quantile, by its last value (1) or seasonal naive (2) from values (B, E >= 288)."""
    horizon = trajectory.shape[1]
    seasonal = values[:, values.shape[1] - PERIOD + np.arange(horizon) % PERIOD]
    baseline = np.where(served[:, None, :] == 1, values[:, -1:], seasonal)
    replace = (served > 0)[:, None, :, None]
    return np.where(replace, baseline[..., None], trajectory).astype(trajectory.dtype)


def _ratio(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """top / bottom, NaN where bottom is not positive (without warnings)."""
    top, bottom = np.broadcast_arrays(top, bottom)
    out = np.full(top.shape, np.nan, dtype=np.float64)
    return np.divide(top, bottom, out=out, where=bottom > 0)


def _number(value: float) -> float | None:
    return round(float(value), 3) if np.isfinite(value) else None
