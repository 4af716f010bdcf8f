"""Shared by the step-buffer tests (tests/test_buffer*.py): ticks as a Batch, and the
aggregated values of one closed step."""

from __future__ import annotations

import numpy as np

import data_contract as dc
from inference.buffers import AGGREGATION, FleetBuffers
from inference.ingest import STATE_CODES, Batch

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
