"""Reading a server's encoder window: the raw ring contents (Snapshot) and the step
values a forecast reads (window_values), filled where steps hold no ticks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import data_contract as dc
from contract_parse import STATE_CODES

MEAN = dc.MEAN_INDEX
OFFLINE = STATE_CODES["offline"]


@dataclass(frozen=True)
class Snapshot:
    """Raw ring contents of B servers' encoder windows (see window_values)."""

    servers: list[str]
    last_step: np.ndarray  # (B,) the last closed step: the forecast origin
    agg: np.ndarray  # (B, E, 14)
    count: np.ndarray  # (B, E)
    state: np.ndarray  # (B, E)
    latest: np.ndarray  # (B, 14) each server's latest tick (fills a window without ticks)
    latest_sec: np.ndarray  # (B,) its timestamp, epoch seconds


def window_values(snapshot: Snapshot) -> tuple[np.ndarray, np.ndarray]:
    """(B, E, 14) float32 step values and (B, E) int8 state codes of a snapshot.

    Means are divided by their tick counts. Steps without ticks become state 'offline'
    with the metrics of the last step before them, as training fills gaps; at the window's
    start, those of the first step after them; in a window without any tick (a server
    back after a day away), its latest tick's.
    """
    values = snapshot.agg.astype(np.float32, copy=True)
    observed = snapshot.count > 0
    values[..., MEAN] /= np.maximum(snapshot.count, 1)[..., None]
    states = np.where(observed, snapshot.state, OFFLINE).astype(np.int8)
    positions = np.arange(observed.shape[1])[None, :]
    previous = np.maximum.accumulate(np.where(observed, positions, -1), axis=1)
    following = np.minimum.accumulate(
        np.where(observed, positions, observed.shape[1])[:, ::-1], axis=1
    )[:, ::-1]
    source = np.where(previous >= 0, previous, np.minimum(following, observed.shape[1] - 1))
    values = np.take_along_axis(values, source[..., None], axis=1)
    empty = ~observed.any(axis=1)
    values[empty] = snapshot.latest[empty][:, None, :]
    return values, states
