"""Evidence for early warnings: what a server's recent history and its forecast say about
each risk metric reaching its critical threshold. Pure, vectorised numpy.

Inputs, per origin (the last closed step, forecasts start after it):

* history (N, HISTORY_STEPS, M): the risk metrics of risk.RISK_METRICS (risk_history()
  derives them from the 14 contract columns), oldest first, the origin's step last, gaps
  carried forward as the daemon fills them; NaN where unknown (load without cores, or
  before a server's first tick).
* trajectory (N, >= HORIZON, 14, 3): the forecaster's p10/p50/p90 per step; forecast_paths()
  turns it into the p50 and the pessimistic ("p90") path of each risk metric, as risk.py
  does (cpu_used_pct's p90 is 100 - cpu_idle_pct's p10).

Features (N, M) are in threshold-relative units, so that one model serves every metric:
a value x is (x - critical) / (critical - warning): 0 at critical, -1 at warning; slopes
and spreads are divided by the same gap. Facts (N, M) are in the metric's own units and
steps, for the wording. "Yesterday" is the same clock time 288 steps (24 h) earlier; its
window around the coming hours reaches JITTER steps either side, so a daily job that
starts a little earlier or later still counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import data_contract as dc
import risk

DAY = dc.STEPS_PER_DAY  # 288: steps in 24 h
TRACK = 36  # steps of "how closely today tracks yesterday" (3 h)
HISTORY_STEPS = DAY + TRACK  # 324: the origin and the 323 steps before it
HOUR = dc.STEPS_PER_HOUR  # 12: steps in 1 h
HORIZON = dc.REPORTED_HORIZONS["8h"]  # 96: steps in 8 h
HORIZONS = (HOUR, HORIZON)  # the two probabilities: critical within 1 h, within 8 h
JITTER = 6  # steps (30 min) either side of yesterday's window
TRACK_TOLERANCE = 0.5  # |today - yesterday| within half the warning-critical gap tracks
RECENCY_STEPS = 36.0  # time constant of the "recently critical" feature (3 h)
LOW, HIGH = -10.0, 2.0  # clip of threshold-relative levels

WARNING = np.array([risk.RISK_THRESHOLDS[m][0] for m in risk.RISK_METRICS])
CRITICAL = np.array([risk.RISK_THRESHOLDS[m][1] for m in risk.RISK_METRICS])
GAP = CRITICAL - WARNING

FEATURES: tuple[str, ...] = (
    "level",  # now
    "recent_max",  # highest of the last hour
    "trend_1h",  # least-squares slope of the last hour, gaps per hour
    "trend_3h",  # same over 3 h
    "volatility",  # std of the step-to-step changes over 3 h, in gaps
    "yday_1h",  # yesterday's highest over the coming hour (+- JITTER)
    "yday_8h",  # yesterday's highest over the coming 8 h (+- JITTER)
    "tracking",  # mean |today - yesterday| over the last 3 h, in gaps
    "tracked",  # share of the last 3 h tracked within TRACK_TOLERANCE (trailing run)
    "offset",  # mean (today - yesterday) over the last hour, in gaps
    "recency",  # exp(-steps since the last critical value / RECENCY_STEPS), 0 if none
    "freq_critical",  # share of the last 24 h at or above critical
    "freq_warning",  # share of the last 24 h at or above warning
    "base_1h",  # share of the past origins in the history followed by critical within 1 h
    "base_8h",  # same within 8 h: the server's own rate of the outcome
    "p50_1h",  # the forecast p50's highest over the coming hour
    "p50_8h",
    "p90_1h",  # the pessimistic path's highest over the coming hour
    "p90_8h",
)
FACTS: tuple[str, ...] = (
    "now",  # value at the origin
    "yday_peak",  # yesterday's highest over the coming 8 h window
    "yday_cross_minutes",  # minutes from the origin (same clock time yesterday) of
    # yesterday's first critical value in the 8 h window; NaN if none
    "yday_cross_value",  # that value
    "track_steps",  # trailing steps (<= TRACK) with |today - yesterday| <= tolerance
    "track_error",  # the largest |today - yesterday| over those steps (NaN if none)
    "p50_cross_step",  # first forecast step (1-based) at or above critical; 0 if none
    "p90_cross_step",
    "since_critical",  # steps since the last critical value in the history; -1 if none
    "last_critical_value",  # that value (NaN if none)
    "critical_steps_24h",  # steps of the last 24 h at or above critical
    "trend_per_hour",  # slope of the last 3 h, units per hour
    "value_3h_ago",  # the value TRACK steps before the origin
    "volatility_units",  # std of the step-to-step changes over 3 h, units
)


@dataclass(frozen=True)
class Evidence:
    """Named (N, M) arrays: model features (threshold-relative) and facts (own units)."""

    features: dict[str, np.ndarray]
    facts: dict[str, np.ndarray]

    @property
    def known(self) -> np.ndarray:
        """(N, M): the metric has a value at the origin."""
        return ~np.isnan(self.facts["now"])

    def matrix(self, names: tuple[str, ...] = FEATURES) -> np.ndarray:
        """(N, M, F) float64 of the named features."""
        return np.stack([self.features[n] for n in names], axis=-1)

    def take(self, rows: np.ndarray) -> Evidence:
        """The evidence of some origins (an index or a boolean mask over N)."""
        pick = {k: v[rows] for k, v in self.features.items()}
        return Evidence(pick, {k: v[rows] for k, v in self.facts.items()})


_SOURCES = [dc.METRIC_COLUMNS.index(risk.RISK_SOURCES[m]) for m in risk.RISK_METRICS]
_CPU = risk.RISK_METRICS.index("cpu_used_pct")
_LOAD = risk.RISK_METRICS.index("load_per_core")


# The flat (column, quantile) index of each path's source in a trajectory step: the p50,
# and the pessimistic side (cpu_used_pct = 100 - idle: idle's p10; the others' p90).
_P50 = [3 * i + 1 for i in _SOURCES]
_HIGH = [3 * i + (0 if m == _CPU else 2) for m, i in enumerate(_SOURCES)]


def _derive(x: np.ndarray, cores: np.ndarray) -> np.ndarray:
    """x (N, ..., M) source columns (float64, a copy) -> risk metrics, in place."""
    cores = np.asarray(cores, dtype=np.float64)
    x[..., _CPU] = 100.0 - x[..., _CPU]
    x[..., _LOAD] /= np.where(cores > 0, cores, np.nan).reshape((-1,) + (1,) * (x.ndim - 2))
    np.copyto(x, np.nan, where=np.isinf(x))
    return x


def risk_history(values: np.ndarray, cores: np.ndarray) -> np.ndarray:
    """values (N, T, 14) contract columns -> (N, T, M) risk metrics, as risk.risk_metrics
    derives them (a test holds the two equal) but reading only the six source columns;
    cores (N,) (NaN or <= 0: unknown, load_per_core NaN). Infinite values become NaN."""
    return _derive(np.take(values, _SOURCES, axis=-1).astype(np.float64), cores)


def forecast_paths(trajectory: np.ndarray, cores: np.ndarray) -> np.ndarray:
    """trajectory (N, H, 14, 3) -> (N, H, 2, M): the p50 path and the pessimistic path of
    each risk metric, as risk.py reads them."""
    n, h = trajectory.shape[:2]
    flat = np.take(trajectory.reshape(n, h, -1), _P50 + _HIGH, axis=-1).astype(np.float64)
    return _derive(flat.reshape(n, h, 2, -1), cores)


def relative(x: np.ndarray) -> np.ndarray:
    """(..., M) values in threshold-relative units, clipped to [LOW, HIGH] (NaN stays)."""
    return np.clip((x - CRITICAL) / GAP, LOW, HIGH)


# Internally every series is (N, M, T), time last: reductions run over contiguous memory.
_CRITICAL, _WARNING, _GAP = CRITICAL[:, None], WARNING[:, None], GAP[:, None]


def _max(x: np.ndarray) -> np.ndarray:
    """The largest value over time ignoring NaN (all NaN: NaN), without a warning."""
    return np.fmax.reduce(x, axis=-1)


def _mean(x: np.ndarray) -> np.ndarray:
    seen = ~np.isnan(x)
    with np.errstate(invalid="ignore"):
        return np.where(seen, x, 0.0).sum(axis=-1) / seen.sum(axis=-1)


def _slope(y: np.ndarray) -> np.ndarray:
    """(N, M, T) -> least-squares slope per step over T (NaN if any value is NaN)."""
    x = np.arange(y.shape[-1], dtype=np.float64)
    dx = (x - x.mean()) / ((x - x.mean()) @ (x - x.mean()))
    return y @ dx


def _trailing(ok: np.ndarray) -> np.ndarray:
    """(N, M, T) booleans -> the length of the run of True that ends at the last step."""
    return np.where(ok.all(axis=-1), ok.shape[-1], ok.shape[-1] - 1 - _last(~ok))


def _last(flags: np.ndarray) -> np.ndarray:
    """(N, M, T) -> index of the last True (meaningful only where any() is True)."""
    return flags.shape[-1] - 1 - flags[..., ::-1].argmax(axis=-1)


def first_step(path: np.ndarray, crossed: np.ndarray | None = None) -> np.ndarray:
    """(N, M, H) -> 1-based step of the first value >= critical, 0 if none."""
    crossed = path >= _CRITICAL if crossed is None else crossed
    return np.where(crossed.any(axis=-1), crossed.argmax(axis=-1) + 1, 0)


def _at(x: np.ndarray, index: np.ndarray) -> np.ndarray:
    """x (N, M, T) at a time index (N, M) per series."""
    return np.take_along_axis(x, index[..., None], axis=-1)[..., 0]


def _yesterday(h: np.ndarray, crossed: np.ndarray) -> dict[str, np.ndarray]:
    """Yesterday around the coming hours; window index j is k = j - JITTER + 1 steps
    ahead of the origin's clock time."""
    origin = h.shape[-1] - 1
    span = slice(origin - DAY + 1 - JITTER, origin - DAY + HORIZON + JITTER + 1)
    window = h[..., span]
    cross = first_step(window, crossed[..., span])  # 1-based index into the window, 0 none
    value = _at(window, np.maximum(cross - 1, 0))
    peak = _max(window)
    return {
        "yday_1h": relative(_max(window[..., : HOUR + 2 * JITTER])),
        "yday_8h": relative(peak),
        "yday_peak": peak,
        "yday_cross_minutes": np.where(cross > 0, (cross - JITTER) * risk.STEP_MINUTES, np.nan),
        "yday_cross_value": np.where(cross > 0, value, np.nan),
    }


def _tracking(h: np.ndarray) -> dict[str, np.ndarray]:
    """Today's last TRACK steps against the same steps yesterday."""
    diff = h[..., -TRACK:] - h[..., -TRACK - DAY : -DAY]
    gap_diff = np.abs(diff) / _GAP
    run = _trailing(gap_diff <= TRACK_TOLERANCE)  # NaN: not tracked
    in_run = np.arange(TRACK)[::-1] < run[..., None]
    return {
        "tracking": np.minimum(_mean(gap_diff), -LOW),
        "tracked": run / TRACK,
        "offset": np.clip(_mean(diff[..., -HOUR:]) / GAP, LOW, -LOW),
        "track_steps": run.astype(np.float64),
        "track_error": _max(np.where(in_run, np.abs(diff), np.nan)),
    }


def _recent(h: np.ndarray, crossed: np.ndarray) -> dict[str, np.ndarray]:
    """Critical and warning values in the history: how recently, how often."""
    any_crossed = crossed.any(axis=-1)
    last = _last(crossed)
    since = np.where(any_crossed, h.shape[-1] - 1 - last, -1)
    day = h[..., -DAY:]
    seen = np.maximum((~np.isnan(day)).sum(axis=-1), 1)
    steps = crossed[..., -DAY:].sum(axis=-1)
    return {
        "recency": np.where(any_crossed, np.exp(-since / RECENCY_STEPS), 0.0),
        "freq_critical": steps / seen,
        "freq_warning": (day >= _WARNING).sum(axis=-1) / seen,
        "since_critical": since.astype(np.float64),
        "last_critical_value": np.where(any_crossed, _at(h, last), np.nan),
        "critical_steps_24h": steps.astype(np.float64),
    }


def _base_rates(crossed: np.ndarray) -> dict[str, np.ndarray]:
    """For each horizon h, the share of the history's past origins t' (t' + h <= now)
    whose next h steps hold a critical value: the outcome's own rate on this server.
    Only the series with a critical value are counted (the others are 0)."""
    rows = crossed.any(axis=-1)
    some = crossed[rows]  # (K, T)
    count = np.zeros((len(some), some.shape[-1] + 1), dtype=np.int32)
    np.cumsum(some, axis=-1, out=count[:, 1:])  # count[:, i]: among the first i steps
    out = {}
    for name, h in (("base_1h", HOUR), ("base_8h", HORIZON)):
        out[name] = np.zeros(rows.shape)
        out[name][rows] = (count[:, 1 + h :] > count[:, 1:-h]).mean(axis=-1)
    return out


def _motion(h: np.ndarray) -> dict[str, np.ndarray]:
    """Level, trend and volatility of the last hours."""
    track = h[..., -TRACK:]
    trend = _slope(track) * HOUR
    volatility = np.diff(track, axis=-1).std(axis=-1)
    return {
        "level": relative(h[..., -1]),
        "recent_max": relative(_max(h[..., -HOUR:])),
        "trend_1h": np.clip(_slope(h[..., -HOUR:]) * HOUR / GAP, -5.0, 5.0),
        "trend_3h": np.clip(trend / GAP, -5.0, 5.0),
        "volatility": np.clip(volatility / GAP, 0.0, 5.0),
        "now": h[..., -1],
        "trend_per_hour": trend,
        "value_3h_ago": track[..., 0],
        "volatility_units": volatility,
    }


def _forecast(paths: np.ndarray) -> dict[str, np.ndarray]:
    """paths (N, 2, M, H): the forecast's highest values and first critical steps."""
    median, high = paths[:, 0, :, :HORIZON], paths[:, 1, :, :HORIZON]
    return {
        "p50_1h": relative(_max(median[..., :HOUR])),
        "p50_8h": relative(_max(median)),
        "p90_1h": relative(_max(high[..., :HOUR])),
        "p90_8h": relative(_max(high)),
        "p50_cross_step": first_step(median).astype(np.float64),
        "p90_cross_step": first_step(high).astype(np.float64),
    }


# Features whose value is unknown (NaN) while the metric itself is known, e.g. a server
# younger than HISTORY_STEPS: the value that says "no evidence".
NEUTRAL = {"yday_1h": LOW, "yday_8h": LOW, "tracking": -LOW, "offset": 0.0}


def compute(history: np.ndarray, paths: np.ndarray) -> Evidence:
    """history (N, HISTORY_STEPS, M) risk metrics, paths (N, >= HORIZON, 2, M) from
    forecast_paths -> Evidence. Features and facts are NaN where the metric is unknown now."""
    if history.ndim != 3 or history.shape[1:] != (HISTORY_STEPS, len(risk.RISK_METRICS)):
        raise ValueError(
            f"history must be (N, {HISTORY_STEPS}, {len(risk.RISK_METRICS)}) risk metrics "
            f"(trouble.evidence.risk_history), got {history.shape}"
        )
    if paths.ndim != 4 or paths.shape[1] < HORIZON or paths.shape[2] != 2:
        raise ValueError(f"paths must be (N, >={HORIZON}, 2, M) (forecast_paths): {paths.shape}")
    h = np.ascontiguousarray(np.moveaxis(history, 1, -1), dtype=np.float64)  # (N, M, T)
    crossed = h >= _CRITICAL
    found = _yesterday(h, crossed) | _tracking(h) | _recent(h, crossed) | _motion(h)
    found |= _base_rates(crossed)
    found |= _forecast(np.ascontiguousarray(paths.transpose(0, 2, 3, 1), dtype=np.float64))
    known = ~np.isnan(h[..., -1])
    for name, value in NEUTRAL.items():
        found[name] = np.where(np.isnan(found[name]), value, found[name])
    features = {n: np.where(known, found[n], np.nan) for n in FEATURES}
    facts = {n: np.where(known, found[n], np.nan) for n in FACTS}
    return Evidence(features, facts)


def from_contract(
    history: np.ndarray, trajectory: np.ndarray, cores: np.ndarray | None = None
) -> Evidence:
    """The evidence from contract columns: history (N, HISTORY_STEPS, 14) as the daemon's
    buffers hold it, trajectory (N, H, 14, 3) as the forecaster returns it, cores (N,)."""
    n = len(history)
    cores = np.full(n, np.nan) if cores is None else np.broadcast_to(cores, (n,))
    return compute(risk_history(history, cores), forecast_paths(trajectory, cores))
