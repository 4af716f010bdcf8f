"""Pure scoring for backtests: panels, forecast origins, encoder windows, baselines, MAE/MASE.

Shared by the backtest (bench/backtest.py) and the trainer's held-out accuracy table
(training.heldout).

Conventions: a panel holds values[server, step, metric] on a regular 5-minute grid with
NaN where no row exists, and the daemon's view of the same data: gaps inside a server's
series filled as training/dataset.fill_gaps fills them (state 'offline', metrics carried
forward). A forecast made at origin t0 (the last observed step) predicts t0+1 .. t0+H;
horizon h (1-based) is step t0+h. Baselines read only the encoder window (B, E, 14) the
model sees, so they are scored on exactly the same information.

MASE scale, per series (server, metric): the mean |x_t - x_{t-288}| over the observed
steps before the cutoff; with fewer than SEASON // 2 such pairs (under 1.5 days of
history), the mean |x_t - x_{t-1}|.
Scales below SCALE_FLOOR (a near-constant series: swap at 0, disk, uptime) are raised to
it, so one flat series cannot dominate the mean; see also the median over series.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

import data_contract as dc
from inference.ingest import STATE_CODES
from training.dataset import OFFLINE_STATE, time_index

SEASON = dc.STEPS_PER_DAY  # 288: one day of 5-minute steps
HORIZONS = dc.REPORTED_HORIZONS  # {"30m": 6, "1h": 12, "8h": 96}
HOUR = dc.STEPS_PER_HOUR  # 12: steps in the last-hour mean
TREND = 6 * dc.STEPS_PER_HOUR  # 72: steps in the predict_linear fit (6 h)
LOW = dc.METRIC_LOW
HIGH = dc.METRIC_HIGH
#: Smallest MASE scale per metric, in its units: 0.1 percentage point, 0.01 day, 0.1
#: connection, 0.01 load, 1e-4 MB/s (real NetworkIn series run at 1e-4 to 1 MB/s).
_FLOORS = {
    "net_in_mb_s": 1e-4,
    "net_out_mb_s": 1e-4,
    "back_close_wait": 0.1,
    "front_close_wait": 0.1,
    "load_average": 0.01,
    "uptime_days": 0.01,
}
SCALE_FLOOR = np.array([0.1 if m.high == 100.0 else _FLOORS[m.name] for m in dc.METRICS])


def nanmean(values: np.ndarray, axis: int) -> np.ndarray:
    """np.nanmean without the warning for all-NaN slices (they stay NaN)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(values, axis=axis)


def nanmedian(values: np.ndarray, axis: int) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(values, axis=axis)


@dataclass(frozen=True)
class Panel:
    servers: list[str]
    first_step: int  # step number (since 1970, as training's time_idx) of column 0
    values: np.ndarray  # [server, step, metric] float64, NaN where no row
    filled: np.ndarray  # [server, step, metric] float32, gaps carried forward (daemon view)
    states: np.ndarray  # [server, step] int8 STATE_CODES, 'offline' where no row

    @property
    def observed(self) -> np.ndarray:
        return ~np.isnan(self.values[:, :, 0])


def carry_forward(values: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """values[s, t] replaced by those of the last observed step <= t (NaN before any)."""
    positions = np.arange(observed.shape[1])[None, :]
    previous = np.maximum.accumulate(np.where(observed, positions, -1), axis=1)
    out = np.take_along_axis(values, np.maximum(previous, 0)[..., None], axis=1)
    out[previous < 0] = np.nan
    return out


def dense_panel(frame: pd.DataFrame, step_seconds: int = dc.STEP_SECONDS) -> Panel:
    """A contract frame on a regular grid shared by all servers."""
    steps = time_index(frame["timestamp"], step_seconds).to_numpy()
    first = int(steps.min())
    servers = sorted(frame["server_name"].unique())
    row = frame["server_name"].map({s: i for i, s in enumerate(servers)}).to_numpy()
    order = np.lexsort((steps, row))  # duplicates: the later row wins
    shape = (len(servers), int(steps.max()) - first + 1)
    values = np.full((*shape, len(dc.METRIC_COLUMNS)), np.nan)
    values[row[order], steps[order] - first] = frame[list(dc.METRIC_COLUMNS)].to_numpy(np.float64)[
        order
    ]
    states = np.full(shape, STATE_CODES[OFFLINE_STATE], dtype=np.int8)
    codes = frame["state"].map(STATE_CODES).to_numpy(np.int8)
    states[row[order], steps[order] - first] = codes[order]
    observed = ~np.isnan(values[:, :, 0])
    filled = carry_forward(values, observed).astype(np.float32)
    return Panel(servers, first, values, filled, states)


def origins(panel: Panel, first, every: int, encoder: int, horizon: int) -> np.ndarray:
    """(server, t0) pairs: t0 = first + k * every (first an int, or one per server), t0 an
    observed step, the encoder inside the server's series (gaps are filled) and t0 + horizon
    no later than its last row."""
    firsts = np.broadcast_to(np.asarray(first, dtype=np.int64), (len(panel.servers),))
    observed, pairs = panel.observed, []
    for s in range(len(panel.servers)):
        seen = np.flatnonzero(observed[s])
        if not seen.size:
            continue
        t0 = np.arange(firsts[s], seen[-1] - horizon + 1, every)
        t0 = t0[(t0 >= seen[0] + encoder - 1)]
        t0 = t0[observed[s, t0]]
        pairs.append(np.stack([np.full(len(t0), s), t0], axis=1))
    return np.concatenate(pairs).astype(np.int64) if pairs else np.empty((0, 2), np.int64)


def windows(panel: Panel, pairs: np.ndarray, encoder: int) -> tuple[np.ndarray, np.ndarray]:
    """The daemon's encoder windows ending at each origin: values (B, E, 14) float32 and
    states (B, E) int8, gathered from sliding-window views (no copy of the panel)."""
    start = pairs[:, 1] - encoder + 1
    values = sliding_window_view(panel.filled, encoder, axis=1)[pairs[:, 0], start]
    states = sliding_window_view(panel.states, encoder, axis=1)[pairs[:, 0], start]
    return np.ascontiguousarray(values.transpose(0, 2, 1)), np.ascontiguousarray(states)


def actuals(panel: Panel, pairs: np.ndarray, horizon: int) -> np.ndarray:
    """[origin, h, metric] observed values after each origin (NaN where missing)."""
    steps = pairs[:, 1:2] + np.arange(1, horizon + 1)
    return panel.values[pairs[:, 0:1], steps]


# --- baselines: encoder window (B, E, 14) -> (B, horizon, 14) ---------------------------


def last_value(window: np.ndarray, horizon: int) -> np.ndarray:
    """The last value, held flat."""
    return np.repeat(window[:, -1:, :], horizon, axis=1).astype(np.float64)


def seasonal_naive(window: np.ndarray, horizon: int, season: int = SEASON) -> np.ndarray:
    """Same time yesterday: step t0+h is forecast by step t0+h-season."""
    if window.shape[1] < season:
        raise ValueError(f"seasonal naive needs {season} steps, got {window.shape[1]}")
    steps = window.shape[1] - season + np.arange(horizon) % season
    return window[:, steps, :].astype(np.float64)


def hour_mean(window: np.ndarray, horizon: int, steps: int = HOUR) -> np.ndarray:
    """The mean of the last `steps` values, held flat."""
    mean = window[:, -steps:, :].astype(np.float64).mean(axis=1, keepdims=True)
    return np.repeat(mean, horizon, axis=1)


def linear_trend(window: np.ndarray, horizon: int, steps: int = TREND) -> np.ndarray:
    """Prometheus predict_linear: a least-squares line through the last `steps` values,
    extended from the origin, clipped to each metric's contract range."""
    y = window[:, -steps:, :].astype(np.float64)
    x = np.arange(1 - steps, 1, dtype=np.float64)
    dx = x - x.mean()
    slope = np.einsum("t,btm->bm", dx, y - y.mean(axis=1, keepdims=True)) / (dx @ dx)
    at_origin = y.mean(axis=1) - slope * x.mean()
    ahead = np.arange(1, horizon + 1, dtype=np.float64)
    line = at_origin[:, None, :] + slope[:, None, :] * ahead[None, :, None]
    return np.clip(line, LOW, HIGH)


BASELINES = {
    "last": last_value,
    "snaive": seasonal_naive,
    "hour_mean": hour_mean,
    "linear": linear_trend,
}


# --- scores ---------------------------------------------------------------------------


def mase_scale(panel: Panel, before) -> tuple[np.ndarray, np.ndarray]:
    """[server, metric] MASE scales from the observed steps before `before` (an int or one
    per server; see the module doc), and whether each was raised to SCALE_FLOOR."""
    steps = np.arange(panel.values.shape[1])
    limit = np.broadcast_to(np.asarray(before), (len(panel.servers),))[:, None]
    history = np.where((steps < limit)[:, :, None], panel.values, np.nan)
    seasonal = np.abs(history[:, SEASON:] - history[:, :-SEASON])
    pairs = (~np.isnan(seasonal)).sum(axis=1)
    lag_one = nanmean(np.abs(np.diff(history, axis=1)), axis=1)
    scale = np.where(pairs >= SEASON // 2, nanmean(seasonal, axis=1), lag_one)
    floored = scale < SCALE_FLOOR
    return np.where(floored, SCALE_FLOOR, scale), floored & ~np.isnan(scale)


def series_mean(err: np.ndarray, server: np.ndarray, n_servers: int) -> np.ndarray:
    """err (N, 14) per origin -> (n_servers, 14) mean per series (NaN: nothing scored)."""
    ok = ~np.isnan(err)
    total = np.zeros((n_servers, err.shape[1]))
    count = np.zeros_like(total)
    np.add.at(total, server, np.where(ok, err, 0.0))
    np.add.at(count, server, ok)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


def coverage(truth: np.ndarray, low: np.ndarray, high: np.ndarray, h: int) -> np.ndarray:
    """Per-metric share of observed values inside [low, high] at horizon h."""
    y = truth[:, h - 1]
    inside = (y >= low[:, h - 1]) & (y <= high[:, h - 1])
    return nanmean(np.where(np.isnan(y), np.nan, inside), axis=0)


def beats(mine: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Per-metric share of series (rows) where `mine` < `other`; exact ties are left out."""
    valid = ~np.isnan(mine) & ~np.isnan(other) & (mine != other)
    return nanmean(np.where(valid, mine < other, np.nan), axis=0)


def score_horizon(
    truth: np.ndarray,
    points: dict[str, np.ndarray],
    server: np.ndarray,
    scale: np.ndarray,
    h: int,
) -> dict[str, dict[str, np.ndarray]]:
    """Per method, per-metric arrays at horizon h: pooled MAE over origins, and the mean
    and median over series of the per-series MASE (series MAE / series scale).
    Also keeps the per-series MAE ("series_mae") for comparisons between methods."""
    out = {}
    for name, point in points.items():
        err = np.abs(point[:, h - 1] - truth[:, h - 1])
        mae = series_mean(err, server, len(scale))
        mase = mae / scale
        out[name] = {
            "mae": nanmean(err, axis=0),
            "mase": nanmean(mase, axis=0),
            "mase_median": nanmedian(mase, axis=0),
            "series_mae": mae,
        }
    return out
