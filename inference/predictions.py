"""The /predict JSON: a server's entry from its cached forecast and its live tick (pure
formatting, no I/O; the cache itself is in inference/cache.py).

A server's entry in /predict:
    current, state, last_seen     its latest tick (live, from the buffers)
    warmup {ready, progress,      progress in percent of the 288-step encoder window;
            observed}             observed: percent of the window's steps with ticks
                                  (ready needs TFT_MIN_OBSERVED_SHARE of them)
    forecast_status               "ok", "pending" (ready, first forecast not made yet),
                                  "warming_up", or "stale": nothing newer than
                                  TFT_SILENT_AFTER_S has arrived (the forecast, if any,
                                  is the last one made)
    forecast_origin               start of the last closed step the forecast starts after;
                                  horizon h is the step starting h x 5 min later
    predictions_30m / _1h / _8h   p50 of every metric at steps 6 / 12 / 96
    quantiles {30m, 1h, 8h}       {p10, p50, p90} of every metric at those steps
    served_by                     only where TFT_SERVE_BETTER_METHOD replaced metrics with a
                                  baseline: {metric: "last_value" / "seasonal_naive"}
    forecast_made_at              when the forecast pass ran
    risk_score, risk_level, risk_factors   see risk.py: the forecast's steps and the
                                  latest tick's values (scored again as ticks arrive)
    trajectory                    only with ?trajectory=true: every step's p10/p50/p90
    accuracy                      only with ?accuracy=true: see accuracy_fields
The forecast's fields are computed once per forecast and cached as JSON bytes; the risk
fields once per scoring.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import numpy as np
import orjson

import data_contract as dc
from risk import Assessment

HORIZONS = dc.REPORTED_HORIZONS  # {"30m": 6, "1h": 12, "8h": 96}
QUANTILES = dc.QUANTILES
ACCURACY_METHODS = ("tft", "last_value", "seasonal_naive")  # see inference/accuracy.py
DECIMALS = 3


def iso(seconds: float) -> str:
    """UTC ISO 8601 with a Z, to the second."""
    return datetime.fromtimestamp(int(seconds), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _metrics(values: np.ndarray) -> dict[str, float]:
    rounded = np.round(values.astype(np.float64), DECIMALS).tolist()
    return dict(zip(dc.METRIC_COLUMNS, rounded, strict=True))


def horizon_values(trajectory: np.ndarray) -> list:
    """(B, H, 14, 3) trajectories -> nested lists [server][horizon][quantile][metric] of
    the reported HORIZONS, rounded (one vectorised step for the whole batch)."""
    steps = [step - 1 for step in HORIZONS.values()]
    picked = trajectory[:, steps].astype(np.float64).transpose(0, 1, 3, 2)
    return np.round(picked, DECIMALS).tolist()


def forecast_fields(
    origin_step: int,
    step_seconds: int,
    horizons: list,
    served: np.ndarray | None = None,
) -> dict[str, Any]:
    """The cached part of a server's entry; horizons is one server's horizon_values(),
    served (14,) the ACCURACY_METHODS index that produced each metric (None: the model)."""
    fields: dict[str, Any] = {"forecast_origin": iso(origin_step * step_seconds)}
    named = {
        label: [dict(zip(dc.METRIC_COLUMNS, values, strict=True)) for values in by_quantile]
        for label, by_quantile in zip(HORIZONS, horizons, strict=True)
    }
    for label, by_quantile in named.items():
        fields[f"predictions_{label}"] = by_quantile[1]
    fields["quantiles"] = {
        label: dict(zip(QUANTILES, by_quantile, strict=True))
        for label, by_quantile in named.items()
    }
    if served is not None and served.any():
        fields["served_by"] = {
            metric: ACCURACY_METHODS[code]
            for metric, code in zip(dc.METRIC_COLUMNS, served.tolist(), strict=True)
            if code
        }
    return fields


def risk_fields(assessment: Assessment, chance: dict[str, Any] | None = None) -> bytes:
    """The risk part of a server's entry: ',"risk_score":...,"risk_factors":[...]', and
    with an early-warning estimate its most likely trouble ',"trouble":{"metric","1h","8h"}'
    (the probabilities of reaching critical within 1 h and 8 h)."""
    risk = {
        "risk_score": assessment.score,
        "risk_level": assessment.level,
        "risk_factors": assessment.factors,
    }
    if chance is not None:
        risk["trouble"] = chance
    return b"," + orjson.dumps(risk)[1:-1]


def trajectory_fields(origin_step: int, step_seconds: int, trajectory: np.ndarray) -> bytes:
    """',"trajectory":{...}' for ?trajectory=true: step start times and every quantile."""
    horizon = trajectory.shape[0]
    starts = (origin_step + np.arange(1, horizon + 1)) * step_seconds
    rounded = np.round(trajectory.astype(np.float64), DECIMALS)
    body = {"timestamps": [iso(s) for s in starts]}
    for i, q in enumerate(QUANTILES):
        body[q] = {m: rounded[:, j, i].tolist() for j, m in enumerate(dc.METRIC_COLUMNS)}
    return b',"trajectory":' + orjson.dumps(body)


def iso_many(seconds: np.ndarray) -> list[str]:
    """iso() of many epoch seconds at once."""
    stamps = np.datetime_as_string(np.asarray(seconds, dtype="datetime64[s]"), unit="s")
    return [f"{s}Z" for s in stamps.tolist()]


def live_fields(
    values: np.ndarray,
    states: np.ndarray,
    seen: np.ndarray,
    warmup: tuple[np.ndarray, np.ndarray, np.ndarray],
    status: list[str],
) -> list[dict[str, Any]]:
    """The per-request part of B servers' entries, vectorised: values (B, 14) and states
    (B,) codes of the latest ticks, seen (B,) their epoch seconds, warmup (ready,
    progress, observed share) (B,) each, shares in [0, 1], and each forecast_status."""
    rounded = np.round(values.astype(np.float64), DECIMALS).tolist()
    ready, progress, observed = warmup
    percent = np.round(100.0 * np.asarray(progress, dtype=np.float64), 1).tolist()
    share = np.round(100.0 * np.asarray(observed, dtype=np.float64), 1).tolist()
    stamps = iso_many(seen)
    rows = zip(
        rounded, states.tolist(), stamps, ready.tolist(), percent, share, status, strict=True
    )
    return [
        {
            "current": dict(zip(dc.METRIC_COLUMNS, current, strict=True)),
            "state": dc.VALID_STATES[state],
            "last_seen": stamp,
            "warmup": {"ready": is_ready, "progress": pct, "observed": seen_pct},
            "forecast_status": status,
        }
        for current, state, stamp, is_ready, pct, seen_pct, status in rows
    ]


def accuracy_fields(mae: np.ndarray, mase: np.ndarray, scored: np.ndarray) -> list[bytes]:
    """',"accuracy":{...}' of n servers from AccuracyTracker.report(): MAE and MASE
    (n, horizon, method, metric), NaN (null) where undefined, and scored counts (n, 3):

    {"scored": {"30m": 96, "1h": 95, "8h": 80},
     "30m": {"mae": {"tft": {metric: ...}, "last_value": {...}, "seasonal_naive": {...}},
             "mase": {...the same...}, "tft_better_than_last_value": {metric: bool}},
     "1h": ..., "8h": ... (null until that horizon has scored a forecast)}"""
    methods = ACCURACY_METHODS
    better = (mae[:, :, 0] < mae[:, :, 1]).tolist()
    mae_lists = np.round(mae, DECIMALS).tolist()
    mase_lists = np.round(mase, DECIMALS).tolist()
    out = []
    for i, counts in enumerate(scored.tolist()):
        block: dict[str, Any] = {"scored": dict(zip(HORIZONS, counts, strict=True))}
        for k, label in enumerate(HORIZONS):
            block[label] = (
                {
                    "mae": {m: _metrics_list(mae_lists[i][k][j]) for j, m in enumerate(methods)},
                    "mase": {m: _metrics_list(mase_lists[i][k][j]) for j, m in enumerate(methods)},
                    "tft_better_than_last_value": _metrics_list(better[i][k]),
                }
                if counts[k]
                else None
            )
        out.append(b',"accuracy":' + orjson.dumps(block))
    return out


def _metrics_list(values: list) -> dict[str, Any]:
    return dict(zip(dc.METRIC_COLUMNS, values, strict=True))


def server_entry(live: dict[str, Any], cached: tuple[bytes, ...], extra: bytes) -> bytes:
    """One server's JSON object: the live fields, then the cached ',"key":value' fragments
    (the forecast's and the risk's; none without a forecast), then extra (the same)."""
    if not cached:
        live = {**live, "risk_score": None, "risk_level": None}
    return b"".join((orjson.dumps(live)[:-1], *cached, extra, b"}"))


def predict_body(
    entries: dict[str, bytes], meta: dict[str, Any], per_part: int = 500
) -> Iterator[bytes]:
    """{"predictions": {...}, then meta's keys (timestamp, model, fleet)}, in parts of
    per_part servers, so that a large answer is never joined into one more copy."""
    names = list(entries)
    yield b'{"predictions":{'
    for start in range(0, len(names), per_part):
        part = [orjson.dumps(n) + b":" + entries[n] for n in names[start : start + per_part]]
        yield (b"," if start else b"") + b",".join(part)
    yield b"}," + orjson.dumps(meta)[1:]
