"""Held-out accuracy of a model as the daemon serves it, against last value and seasonal naive.

gather() takes every forecast origin of a frame from a cutoff on (every ``every`` steps),
builds each origin's window as the daemon does (training.scoring: gaps filled, at least a
day long so that seasonal naive reads the same window) and forecasts them with the given
forecaster (TFTForecaster: accelerated forward, sorted quantiles, clipping, uptime by
rule). accuracy_rows() scores them per metric and horizon; bench/backtest.py reports
those rows, and accuracy_table() is the "accuracy" entry of training_info.json.

The trainer scores its model on the data it did not train on (heldout_cutoff): the rows
from --until on when the data has them (as the README's backtest of the shipped model),
else the validation period (not trained on, but watched by early stopping). An existing
artifact is scored from its training data with ``python -m training.heldout --model
models/latest --data TRAINING_DATA.parquet`` (--write: into its training_info.json).
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pytorch_forecasting import TemporalFusionTransformer

import data_contract as dc
from env_settings import configure_logging
from inference.forecast import Forecaster, TFTForecaster
from training import scoring
from training.artifact import LoadedModel, load_artifact, write_training_info
from training.dataset import time_index, to_utc

logger = logging.getLogger(__name__)

EVERY = 24  # steps between origins on fleet data (2 h), as in the README's backtest
REPORTED = ("tft", "last", "snaive")
SCORE = (
    "MASE of the p50 (baselines: their point) at each horizon: per series (server, metric), "
    "MAE over the origins / the series' mean |x_t - x_(t-288)| before the cutoff (lag 1 "
    "under 1.5 days of history; floored, see floored_scales), then the mean over series"
)
METHODS = {
    "tft": "this model as the daemon serves it",
    "last": "last value, held flat",
    "snaive": "seasonal naive: same time yesterday",
}


@dataclass
class Origins:
    """Everything known at each origin: windows, forecasts, truth, scales."""

    panel: scoring.Panel
    pairs: np.ndarray
    values: np.ndarray
    trajectory: np.ndarray
    truth: np.ndarray
    scale: np.ndarray
    floored: np.ndarray


def cutoff_steps(panel: scoring.Panel, cutoff: Any) -> np.ndarray:
    """Per server, the panel column of its cutoff (a timestamp, or one per server)."""
    if not isinstance(cutoff, dict):
        cutoff = dict.fromkeys(panel.servers, cutoff)
    stamps = pd.Series([cutoff[s] for s in panel.servers])
    return (time_index(stamps).to_numpy() - panel.first_step).astype(np.int64)


def gather(
    forecaster: Forecaster,
    frame: pd.DataFrame,
    cutoff: Any,
    every: int,
    encoder: int = dc.STEPS_PER_DAY,
) -> Origins:
    """Build the origins' windows and forecast them; the forecaster reads the last
    ``encoder`` steps of each window (a day or longer, for seasonal naive)."""
    panel = scoring.dense_panel(frame)
    first = cutoff_steps(panel, cutoff)
    length, horizon = max(encoder, scoring.SEASON), forecaster.horizon
    pairs = scoring.origins(panel, first, every, length, horizon)
    values, states = scoring.windows(panel, pairs, length)
    servers = [panel.servers[s] for s in pairs[:, 0]]
    logger.info("forecasting %d origins", len(pairs))
    last = panel.first_step + pairs[:, 1]
    trajectory = forecaster.forecast(values[:, -encoder:], states[:, -encoder:], servers, last)
    scale, floored = scoring.mase_scale(panel, first)
    truth = scoring.actuals(panel, pairs, horizon)
    return Origins(panel, pairs, values, trajectory, truth, scale, floored)


def horizons(o: Origins) -> dict[str, int]:
    """The reported horizons (30m, 1h, 8h) within the forecast's length."""
    return {label: h for label, h in scoring.HORIZONS.items() if h <= o.truth.shape[1]}


def accuracy_rows(o: Origins, keep: np.ndarray, measured: np.ndarray) -> list[dict]:
    """One row per (metric, horizon) with scored series, for the origins in `keep`."""
    truth = np.where(measured[o.pairs[:, 0]][:, None, :], o.truth, np.nan)[keep]
    windows = o.values[keep]
    points = {"tft": o.trajectory[keep, ..., 1]}
    points |= {name: f(windows, o.truth.shape[1]) for name, f in scoring.BASELINES.items()}
    methods, server, rows = list(points), o.pairs[keep, 0], []
    for label, h in horizons(o).items():
        res = scoring.score_horizon(truth, points, server, o.scale, h)
        q = o.trajectory[keep]
        cover = scoring.coverage(truth, q[..., 0], q[..., 2], h)
        beat = scoring.beats(res["tft"]["series_mae"], res["last"]["series_mae"])
        for m, metric in enumerate(dc.METRIC_COLUMNS):
            if np.isnan(res["tft"]["mase"][m]):
                continue
            row = {"metric": metric, "horizon": label, "mae_tft": res["tft"]["mae"][m]}
            row["mae_last"] = res["last"]["mae"][m]
            row |= {f"mase_{k}": res[k]["mase"][m] for k in methods}
            row |= {f"mase_median_{k}": res[k]["mase_median"][m] for k in methods}
            rows.append(row | {"coverage": cover[m], "beats_last": beat[m]})
    return [{k: v if isinstance(v, str) else float(v) for k, v in r.items()} for r in rows]


def summary(rows: list[dict]) -> list[dict]:
    """Per horizon, the mean over the scored metrics of every numeric column."""
    if not rows:
        return []
    table = pd.DataFrame(rows).drop(columns=["metric", "mae_tft", "mae_last"])
    out = table.groupby("horizon", sort=False).mean().reset_index()
    return [
        {k: v if isinstance(v, str) else float(v) for k, v in r.items()}
        for r in out.to_dict("records")
    ]


def _mase(row: dict) -> dict[str, float | None]:
    """{method: MASE} of REPORTED, rounded; None where nothing was scored (JSON: no NaN)."""
    values = {k: row[f"mase_{k}"] for k in REPORTED}
    return {k: None if np.isnan(v) else round(v, 4) for k, v in values.items()}


def group_table(o: Origins, keep: np.ndarray) -> dict[str, Any]:
    """One group of origins: counts, mean MASE over metrics and MASE per metric."""
    rows = accuracy_rows(o, keep, np.ones_like(o.scale, dtype=bool))
    servers = sorted(set(o.pairs[keep, 0].tolist()))
    per_metric: dict[str, dict[str, Any]] = {}
    for row in rows:
        per_metric.setdefault(row["metric"], {})[row["horizon"]] = _mase(row)
    return {
        "origins": int(keep.sum()),
        "servers": len(servers),
        "floored_scales": int(o.floored[servers].sum()),
        "mean_over_metrics": {row["horizon"]: _mase(row) for row in summary(rows)},
        "per_metric": per_metric,
    }


def accuracy_table(o: Origins, split: dict[str, str], every: int, unseen: list[str]) -> dict:
    """training_info.json's "accuracy": all servers, and the never-seen ones alone."""
    names = np.array(o.panel.servers, dtype=object)[o.pairs[:, 0]]
    groups = {"all servers": np.ones(len(o.pairs), dtype=bool)}
    if unseen:
        groups["unseen servers"] = np.isin(names, unseen)
    return {
        **split,
        "every_steps": every,
        "horizons": horizons(o),
        "score": SCORE,
        "methods": METHODS,
        "groups": {g: group_table(o, keep) for g, keep in groups.items()},
    }


# --- the trainer's held-out split -----------------------------------------------------


def heldout_cutoff(frame: pd.DataFrame, info: dict[str, Any]) -> tuple[pd.Timestamp, str]:
    """The first step a run did not train on, from its training_info, and what it is."""
    until = info.get("until")
    if until is not None and bool((to_utc(frame["timestamp"]) >= pd.Timestamp(until)).any()):
        return pd.Timestamp(until), "rows from --until on: never trained on"
    start = pd.Timestamp(info["validation_start"]).tz_convert("UTC")
    return start, "validation period: not trained on (early stopping watched it)"


def score_model(
    forecaster: Forecaster, frame: pd.DataFrame, info: dict[str, Any], encoder: int
) -> dict[str, Any]:
    """The accuracy table of a model on the data its training_info says it did not see:
    origins every EVERY steps from heldout_cutoff; its held-out and unused servers alone too."""
    cutoff, split = heldout_cutoff(frame, info)
    unseen = [*(info.get("holdout_servers") or []), *(info.get("unused_servers") or [])]
    o = gather(forecaster, frame, cutoff, EVERY, encoder)
    return accuracy_table(o, {"split": split, "cutoff": cutoff.isoformat()}, EVERY, unseen)


def trained_forecaster(
    model: TemporalFusionTransformer,
    config: dict[str, Any],
    info: dict[str, Any],
    mapping: dict[str, dict[str, str]],
) -> TFTForecaster:
    """The daemon's forecaster for a model just trained, on a copy (accelerate() sets
    attributes on the instance it is given) and on config.json as it will be read."""
    config = json.loads(json.dumps(config))
    model = copy.deepcopy(model).cpu().eval()
    return TFTForecaster(LoadedModel(model, config, info, mapping, "trained", Path()))


# --- command line: fill an existing artifact's table ----------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.heldout", description=__doc__)
    parser.add_argument("--model", default="models/latest", help="artifact (or latest)")
    parser.add_argument("--data", type=Path, required=True, help="the model's training data")
    parser.add_argument("--write", action="store_true", help="into its training_info.json")
    args = parser.parse_args(argv)
    configure_logging()
    loaded = load_artifact(args.model)
    frame = pd.read_parquet(args.data)
    dc.require_valid(frame, source=str(args.data))
    encoder = int(loaded.config["encoder_length"])
    table = score_model(TFTForecaster(loaded), frame, loaded.training_info, encoder)
    if args.write:
        write_training_info(loaded.path, loaded.training_info | {"accuracy": table})
    sys.stdout.write(json.dumps(table, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
