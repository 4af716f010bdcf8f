"""The JSON documents of an artifact: config.json and training_info.json."""

from __future__ import annotations

import math
import platform
from importlib import metadata
from typing import Any

import pandas as pd
from pytorch_forecasting import TemporalFusionTransformer, TimeSeriesDataSet

from data_contract import CONTRACT_VERSION
from training import dataset, deterministic
from training.codec import encode
from training.inputs import describe_inputs
from training.model import architecture_to_json

_VERSIONED = ("torch", "lightning", "pytorch-forecasting", "pandas", "numpy", "safetensors")
GAP_POLICY = (
    "every step between a server's first and last row is present: missing steps are "
    "filled with state 'offline', metrics carried forward from the last observed step, "
    "and time features computed from the step's own timestamp"
)


def library_versions() -> dict[str, str]:
    """Versions of python and the libraries that define the model and its inputs."""
    versions = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "unknown"
    return versions


def build_config(
    model: TemporalFusionTransformer,
    train: TimeSeriesDataSet,
    time_zone: str | None,
    step_seconds: int,
) -> dict[str, Any]:
    """config.json: architecture, loss, dataset parameters and the input layout."""
    return {
        "artifact_format": 1,
        "model_class": "TemporalFusionTransformer",
        "contract_version": CONTRACT_VERSION,
        "step_seconds": step_seconds,
        "encoder_length": train.max_encoder_length,
        "min_encoder_length": train.min_encoder_length,
        "horizon": train.max_prediction_length,
        "reported_horizons": dataset.REPORTED_HORIZONS,
        "quantiles": [float(q) for q in model.loss.metrics[0].quantiles],
        "targets": list(train.target_names),
        "time_features": list(train.time_varying_known_reals),
        "time_origin": dataset.TIME_ORIGIN.isoformat(),
        "time_zone": time_zone,
        "gap_policy": GAP_POLICY,
        "deterministic_metrics": dict(deterministic.RULES),
        "architecture": architecture_to_json(model),
        "loss": encode(model.loss),
        "output_transformer": encode(model.output_transformer),
        "dataset": dataset.parameters_to_json(train),
        "inputs": describe_inputs(train, model),
    }


def model_states(train: TimeSeriesDataSet) -> list[str]:
    """The states the model's state embedding knows (the encoder's classes but NaN)."""
    classes = train._categorical_encoders["state"].classes_
    return sorted(k for k, v in classes.items() if v != 0)


def build_training_info(
    frame: pd.DataFrame,
    train: TimeSeriesDataSet,
    validation: TimeSeriesDataSet,
    losses: dict[str, Any],
    extra: dict[str, Any],
    step_seconds: int = dataset.STEP_SECONDS,
) -> dict[str, Any]:
    """training_info.json; ``losses`` from the fit, ``extra`` is merged in as is."""
    ts = frame["timestamp"]
    first_val = dataset.step_timestamps([validation.min_prediction_idx], step_seconds, ts.dt.tz)[0]
    best = losses.get("best_loss", math.inf)
    return {
        "unique_states": model_states(train),
        "observed_states": sorted(frame["state"].astype(str).unique()),
        "servers": sorted(frame["server_name"].unique()),
        "data_time_range": {"start": ts.min().isoformat(), "end": ts.max().isoformat()},
        "validation_start": first_val.isoformat(),
        "rows": len(frame),
        "train_windows": len(train),
        "val_windows": len(validation),
        "epochs_run": losses.get("epochs_run"),
        "best_epoch": losses.get("best_epoch"),
        "train_losses": losses.get("train_losses", []),
        "train_loss": (losses.get("train_losses") or [None])[-1],
        "val_loss": best if math.isfinite(best) else None,
        "library_versions": library_versions(),
        "accuracy": None,  # the trainer fills in training.heldout's table
        **extra,
    }
