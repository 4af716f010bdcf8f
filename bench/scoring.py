"""Pure scoring for backtests: dense panels, forecast origins, baselines, MAE/MASE/coverage.

Conventions: a panel is values[server, step, metric] on a regular 5-minute grid with NaN
where no row exists (offline). A forecast made at origin t0 (the last observed step)
predicts steps t0+1 .. t0+H; horizon h (1-based) is step t0+h.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

import data_contract as dc

SEASON = 288  # one day of 5-minute steps
HORIZONS = {"30m": 6, "1h": 12, "8h": 96}


def nanmean(values: np.ndarray, axis: int) -> np.ndarray:
    """np.nanmean without the warning for all-NaN slices (they stay NaN)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(values, axis=axis)


@dataclass(frozen=True)
class Panel:
    servers: list[str]
    start: pd.Timestamp  # timestamp of step 0
    step_seconds: int
    values: np.ndarray  # [server, step, metric], float64, NaN where missing


def dense_panel(frame: pd.DataFrame, step_seconds: int = 300) -> Panel:
    """Put a contract frame on a regular grid shared by all servers."""
    start = frame["timestamp"].min()
    steps = ((frame["timestamp"] - start).dt.total_seconds() // step_seconds).astype(int)
    servers = sorted(frame["server_name"].unique())
    row = frame["server_name"].map({s: i for i, s in enumerate(servers)}).to_numpy()
    values = np.full((len(servers), steps.max() + 1, len(dc.METRIC_COLUMNS)), np.nan)
    values[row, steps.to_numpy()] = frame[list(dc.METRIC_COLUMNS)].to_numpy(np.float64)
    return Panel(servers, start, step_seconds, values)


def origins(panel: Panel, first, every: int, encoder: int, horizon: int) -> np.ndarray:
    """(server, t0) pairs with t0 >= first (an int, or one per server), a full observed
    encoder, and the horizon inside the server's own series."""
    pairs = []
    observed = ~np.isnan(panel.values[:, :, 0])
    firsts = np.broadcast_to(np.asarray(first), (len(panel.servers),))
    for s in range(len(panel.servers)):
        last = np.flatnonzero(observed[s])[-1]  # a server's series ends with its last row
        for t0 in range(max(int(firsts[s]), encoder - 1), last - horizon + 1, every):
            if observed[s, t0 - encoder + 1 : t0 + 1].all():
                pairs.append((s, t0))
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


def _future_index(pairs: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    steps = pairs[:, 1:2] + np.arange(1, horizon + 1)
    return pairs[:, 0:1], steps


def actuals(panel: Panel, pairs: np.ndarray, horizon: int) -> np.ndarray:
    """[origin, h, metric] observed values after each origin (NaN where missing)."""
    rows, steps = _future_index(pairs, horizon)
    return panel.values[rows, steps]


def seasonal_naive(panel: Panel, pairs: np.ndarray, horizon: int) -> np.ndarray:
    """Same time yesterday: step t0+h is forecast by step t0+h-288."""
    rows, steps = _future_index(pairs, horizon)
    return panel.values[rows, steps - SEASON]


def last_value(panel: Panel, pairs: np.ndarray, horizon: int) -> np.ndarray:
    """The last observed value, held flat."""
    last = panel.values[pairs[:, 0], pairs[:, 1]]
    return np.repeat(last[:, None, :], horizon, axis=1)


def mase_scale(panel: Panel, before) -> np.ndarray:
    """[server, metric] in-sample MAE of seasonal naive on steps before `before` (an int,
    or one per server). Zero (a constant series) becomes NaN, so it is not scored.
    """
    steps = np.arange(panel.values.shape[1])
    limit = np.broadcast_to(np.asarray(before), (len(panel.servers),))[:, None]
    history = np.where((steps < limit)[:, :, None], panel.values, np.nan)
    diffs = np.abs(history[:, SEASON:] - history[:, :-SEASON])
    scale = nanmean(diffs, axis=1)
    return np.where(scale > 1e-9, scale, np.nan)


def score(
    truth: np.ndarray, point: np.ndarray, scale: np.ndarray, h: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-metric (MAE, MASE) at 1-based horizon h; scale is [origin, metric]."""
    err = np.abs(point[:, h - 1] - truth[:, h - 1])
    return nanmean(err, axis=0), nanmean(err / scale, axis=0)


def coverage(truth: np.ndarray, low: np.ndarray, high: np.ndarray, h: int) -> np.ndarray:
    """Per-metric share of observed values inside [low, high] at horizon h."""
    y = truth[:, h - 1]
    inside = (y >= low[:, h - 1]) & (y <= high[:, h - 1])
    inside = np.where(np.isnan(y), np.nan, inside)
    return nanmean(inside, axis=0)
