"""The model's input layout, described in config.json for a fast inference path.

TemporalFusionTransformer.forward(x) reads these keys (B = batch, E = encoder steps,
D = decoder steps, R = len(x_reals), C = len(x_categoricals), T = 14 targets):

    encoder_cont float32 (B, E, R)   decoder_cont float32 (B, D, R)
    encoder_cat  int64   (B, E, C)   decoder_cat  int64   (B, D, C)
    encoder_lengths int64 (B,)       decoder_lengths int64 (B,)
    target_scale list of T float32 (B, 2) tensors: [center, scale] per target

and returns out["prediction"]: a list of T tensors (B, D, 3), quantiles 0.1/0.5/0.9 in
real units. Columns follow x_reals / x_categoricals; each real is built as described
under "reals". Decoder values of unknown inputs (targets, state) are never read: any
value (e.g. 0) works. Static inputs are read at the first encoder step only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from pytorch_forecasting import TemporalFusionTransformer, TimeSeriesDataSet

from training.dataset import TIME_FEATURE_SCALING, scaled_time_features, step_timestamps

BATCH_KEYS = {
    "encoder_cont": "float32 (B, E, len(x_reals))",
    "decoder_cont": "float32 (B, D, len(x_reals))",
    "encoder_cat": "int64 (B, E, len(x_categoricals))",
    "decoder_cat": "int64 (B, D, len(x_categoricals))",
    "encoder_lengths": "int64 (B,)",
    "decoder_lengths": "int64 (B,)",
    "target_scale": "list of len(targets) float32 (B, 2): window [center, scale]",
}


def _real_source(name: str, dataset: TimeSeriesDataSet) -> dict[str, Any]:
    targets = dataset.target_names
    if name in TIME_FEATURE_SCALING:
        center, half = TIME_FEATURE_SCALING[name]
        return {"kind": "time_feature", "formula": f"(raw - {center}) / {half}"}
    if name in targets:
        return {"kind": "target", "formula": "(t(value) - center) / scale of this window"}
    if name == "relative_time_idx":
        return {
            "kind": "relative_time_idx",
            "formula": "arange(-encoder_length, decoder_length) / max_encoder_length",
        }
    if name == "encoder_length":
        return {
            "kind": "encoder_length",
            "formula": "(encoder_length - max_encoder_length / 2) / max_encoder_length * 2",
        }
    for part in ("center", "scale"):
        if name.endswith(f"_{part}") and name[: -len(part) - 1] in targets:
            target = name[: -len(part) - 1]
            return {"kind": f"target_{part}", "target": target, "formula": f"log1p({part})"}
    raise ValueError(f"no input recipe for real {name!r}")


def _normalizer_entry(target: str, normalizer: Any) -> dict[str, Any]:
    return {
        "target": target,
        "class": type(normalizer).__name__,
        "method": normalizer.method,
        "center": normalizer.center,
        "transformation": normalizer.transformation,
        "min_scale": getattr(normalizer, "min_scale", 0.0),
        "formula": "center = mean(t(y_enc)); scale = max(std(t(y_enc), ddof=1) + "
        "float32_eps, min_scale); t = log1p | identity; inverse t = expm1 | identity",
    }


def describe_inputs(dataset: TimeSeriesDataSet, model: TemporalFusionTransformer) -> dict[str, Any]:
    """Everything needed to build forward()'s x from numpy buffers."""
    encoders = dataset._categorical_encoders
    return {
        "batch_keys": BATCH_KEYS,
        "x_reals": list(dataset.reals),
        "x_categoricals": list(dataset.flat_categoricals),
        "static_variables": list(model.static_variables),
        "encoder_variables": list(model.encoder_variables),
        "decoder_variables": list(model.decoder_variables),
        "reals": {name: _real_source(name, dataset) for name in dataset.reals},
        "categorical_encodings": {
            name: {
                "unknown": 0,
                "classes": {str(k): int(v) for k, v in encoders[name].classes_.items()},
            }
            for name in dataset.flat_categoricals
        },
        "target_normalizers": [
            _normalizer_entry(t, n)
            for t, n in zip(dataset.target_names, dataset.target_normalizers, strict=True)
        ],
        "time_feature_scaling": {k: list(v) for k, v in TIME_FEATURE_SCALING.items()},
        "float32_eps": float(np.finfo(np.float32).eps),
    }


# --- reference implementation: numpy buffers -> forward() inputs ---------------------


def _normalise(values: torch.Tensor, entry: dict[str, Any], eps: float) -> tuple:
    """Per-window (center, scale) of (B, E) encoder values, as MetricNormalizer does."""
    y = torch.log1p(values) if entry["transformation"] == "log1p" else values
    center = y.mean(dim=1)
    scale = (y.std(dim=1) + eps).clamp(min=entry["min_scale"])
    return (y - center[:, None]) / scale[:, None], center, scale


def _time_columns(idx: np.ndarray, config: dict[str, Any]) -> np.ndarray:
    stamps = step_timestamps(idx.reshape(-1), config["step_seconds"], config["time_zone"])
    features = scaled_time_features(stamps).to_numpy(np.float32, copy=True)
    return features.reshape(*idx.shape, features.shape[-1])


def _real_inputs(config: dict[str, Any], metrics: np.ndarray, last_idx: np.ndarray) -> tuple:
    """(B, E + D, len(x_reals)) continuous inputs and the per-target window scales."""
    spec, (batch, enc, _) = config["inputs"], metrics.shape
    dec, max_enc = config["horizon"], config["encoder_length"]
    columns = {name: i for i, name in enumerate(spec["x_reals"])}
    cont = torch.zeros(batch, enc + dec, len(columns), dtype=torch.float32)
    idx = np.asarray(last_idx)[:, None] + np.arange(-enc + 1, dec + 1)[None, :]
    times = torch.from_numpy(_time_columns(idx, config))
    for i, name in enumerate(config["time_features"]):
        cont[:, :, columns[name]] = times[:, :, i]
    cont[:, :, columns["relative_time_idx"]] = torch.arange(-enc, dec) / max_enc
    if "encoder_length" in columns:
        cont[:, :, columns["encoder_length"]] = (enc - 0.5 * max_enc) / max_enc * 2.0
    values, target_scale = torch.as_tensor(np.asarray(metrics, dtype=np.float32)), []
    for t, entry in enumerate(spec["target_normalizers"]):
        normalised, center, scale = _normalise(values[:, :, t], entry, spec["float32_eps"])
        cont[:, :enc, columns[entry["target"]]] = normalised
        cont[:, :, columns[f"{entry['target']}_center"]] = torch.log1p(center)[:, None]
        cont[:, :, columns[f"{entry['target']}_scale"]] = torch.log1p(scale)[:, None]
        target_scale.append(torch.stack([center, scale], dim=1))
    return cont, target_scale


def _categorical_inputs(
    config: dict[str, Any], states: np.ndarray, server_ids: list[str]
) -> torch.Tensor:
    """(B, E + D, len(x_categoricals)) codes; unknown values (and decoder states) are 0."""
    spec, (batch, enc) = config["inputs"], states.shape
    codes, names = spec["categorical_encodings"], spec["x_categoricals"]
    cat = torch.zeros(batch, enc + config["horizon"], len(names), dtype=torch.long)
    servers = [codes["server_id"]["classes"].get(s, 0) for s in server_ids]
    cat[:, :, names.index("server_id")] = torch.tensor(servers)[:, None]
    lookup = np.vectorize(lambda s: codes["state"]["classes"].get(s, 0), otypes=[np.int64])
    cat[:, :enc, names.index("state")] = torch.from_numpy(lookup(states))
    return cat


def build_inputs(
    config: dict[str, Any],
    metrics: np.ndarray,
    states: np.ndarray,
    server_ids: list[str],
    last_idx: np.ndarray,
) -> dict[str, Any]:
    """forward() inputs for B servers from gap-filled numpy histories (reference path).

    metrics (B, E, 14) in METRIC_COLUMNS order, states (B, E) state names, server_ids
    (B,) encoded names, last_idx (B,) time_idx of each server's last observed step; the
    forecast covers the ``horizon`` steps after it. E <= encoder_length (and >= the
    config's min_encoder_length for a model trained with variable lengths).
    """
    cont, target_scale = _real_inputs(config, metrics, last_idx)
    cat = _categorical_inputs(config, np.asarray(states), server_ids)
    enc, batch = metrics.shape[1], metrics.shape[0]
    return {
        "encoder_cont": cont[:, :enc],
        "decoder_cont": cont[:, enc:],
        "encoder_cat": cat[:, :enc],
        "decoder_cat": cat[:, enc:],
        "encoder_lengths": torch.full((batch,), enc, dtype=torch.long),
        "decoder_lengths": torch.full((batch,), config["horizon"], dtype=torch.long),
        "target_scale": target_scale,
    }
