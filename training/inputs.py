"""The model's input layout (described in config.json) and its builder from numpy.

assemble_inputs builds forward()'s x for a batch of windows from numeric arrays in a few
vectorised operations, bit-identical to pytorch-forecasting's TimeSeriesDataSet batches:
build_inputs wraps it for inference (state and server names, time features computed
from the step numbers), training.batches for the fast training batches.

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

Models trained with training.recurrence inputs (window summaries, yesterday) have reals
that TimeSeriesDataSet does not build: they are made here only, from the same normalised
window as the targets, for training and inference alike (kinds "window_summary" and
"yesterday" in config.json). Every other input is as the library builds it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from pytorch_forecasting import TemporalFusionTransformer, TimeSeriesDataSet

from training import recurrence
from training.dataset import (
    STEP_SECONDS,
    TIME_FEATURE_SCALING,
    scaled_time_features,
    step_timestamps,
)
from training.normalizers import TRANSFORMATIONS, anchor_parameters

BATCH_KEYS = {
    "encoder_cont": "float32 (B, E, len(x_reals))",
    "decoder_cont": "float32 (B, D, len(x_reals))",
    "encoder_cat": "int64 (B, E, len(x_categoricals))",
    "decoder_cat": "int64 (B, D, len(x_categoricals))",
    "encoder_lengths": "int64 (B,)",
    "decoder_lengths": "int64 (B,)",
    "target_scale": "list of len(targets) float32 (B, 2): window [center, scale]",
}


def _real_source(name: str, dataset: TimeSeriesDataSet, step_seconds: int) -> dict[str, Any]:
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
    known = recurrence.source(name, targets, step_seconds)
    if known is not None:
        return known
    raise ValueError(f"no input recipe for real {name!r}")


_FORMULAS = {
    "mean": "center = mean(t(y_enc)); scale = max(std(t(y_enc), ddof=1) + float32_eps, min_scale)",
    "last": "center = t(y_enc)[-1]; scale = max(sqrt(mean(diff(t(y_enc))^2)), min_scale)",
}


def _normalizer_entry(target: str, normalizer: Any) -> dict[str, Any]:
    anchor = getattr(normalizer, "anchor", "mean")
    return {
        "target": target,
        "class": type(normalizer).__name__,
        "method": normalizer.method,
        "center": normalizer.center,
        "transformation": normalizer.transformation,
        "min_scale": getattr(normalizer, "min_scale", 0.0),
        "anchor": anchor,
        "formula": f"{_FORMULAS[anchor]}; t = log1p | log1p(1000 x) | identity, inverted exactly",
    }


def describe_inputs(
    dataset: TimeSeriesDataSet, model: TemporalFusionTransformer, step_seconds: int = STEP_SECONDS
) -> dict[str, Any]:
    """Everything needed to build forward()'s x from numpy buffers. The model's reals are
    the dataset's plus any training.recurrence inputs (which the dataset does not know)."""
    encoders, reals = dataset._categorical_encoders, list(model.hparams.x_reals)
    return {
        "batch_keys": BATCH_KEYS,
        "x_reals": reals,
        "x_categoricals": list(dataset.flat_categoricals),
        "static_variables": list(model.static_variables),
        "encoder_variables": list(model.encoder_variables),
        "decoder_variables": list(model.decoder_variables),
        "reals": {name: _real_source(name, dataset, step_seconds) for name in reals},
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


# --- numpy buffers -> forward() inputs (inference and the fast training batches) ------


def _transform(values: torch.Tensor, entries: list[dict[str, Any]]) -> torch.Tensor:
    """Each target (axis 1) through its normaliser's forward transformation."""
    y = values.clone()
    for name in {e["transformation"] for e in entries} - {None}:
        rows = [i for i, e in enumerate(entries) if e["transformation"] == name]
        y[:, rows] = TRANSFORMATIONS[name]["forward"](values[:, rows])
    return y


def _normalise(values: torch.Tensor, spec: dict[str, Any], enc: int) -> tuple:
    """Per-window, per-target (center, scale) of the first ``enc`` steps, as
    MetricNormalizer fits them, and all (B, T, L) values normalised with them.

    Rows are reduced along a contiguous last axis, like the library's per-window 1-D
    tensors, so the results are bit-identical to TimeSeriesDataSet's."""
    entries = spec["target_normalizers"]
    y = _transform(values, entries)
    head = y[..., :enc].contiguous()
    floor = torch.tensor([e["min_scale"] for e in entries], dtype=torch.float32)
    last = torch.tensor([e.get("anchor", "mean") == "last" for e in entries])
    center, scale = head.mean(dim=-1), head.std(dim=-1) + spec["float32_eps"]
    if last.any():
        last_center, last_scale = anchor_parameters(head[:, last])
        center[:, last], scale[:, last] = last_center, last_scale
    scale = torch.maximum(scale, floor)
    return (y - center[..., None]) / scale[..., None], center, scale


def window_times(config: dict[str, Any], last_idx: np.ndarray, enc: int) -> np.ndarray:
    """(B, enc + horizon, K) scaled time features of the windows whose encoder ends at
    ``last_idx`` (computed from each step's own timestamp)."""
    idx = np.asarray(last_idx)[:, None] + np.arange(-enc + 1, config["horizon"] + 1)[None, :]
    steps, inverse = np.unique(idx, return_inverse=True)  # windows mostly share their steps
    stamps = step_timestamps(steps, config["step_seconds"], config["time_zone"])
    features = scaled_time_features(stamps)[config["time_features"]].to_numpy(np.float32)
    return features[inverse.reshape(-1)].reshape(*idx.shape, features.shape[-1])


def _real_inputs(
    config: dict[str, Any], metrics: torch.Tensor, times: np.ndarray, enc: int
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(B, E + D, len(x_reals)) continuous inputs and the per-target window scales."""
    spec, (batch, length, _) = config["inputs"], metrics.shape
    dec, max_enc = config["horizon"], config["encoder_length"]
    col = {name: i for i, name in enumerate(spec["x_reals"])}
    cont = torch.zeros(batch, enc + dec, len(col), dtype=torch.float32)
    cont[:, :, [col[name] for name in config["time_features"]]] = torch.from_numpy(times)
    cont[:, :, col["relative_time_idx"]] = torch.arange(-enc, dec) / max_enc
    if "encoder_length" in col:
        cont[:, :, col["encoder_length"]] = (enc - 0.5 * max_enc) / max_enc * 2.0
    targets = [entry["target"] for entry in spec["target_normalizers"]]
    normalised, center, scale = _normalise(metrics.transpose(1, 2), spec, enc)
    cont[:, :length, [col[t] for t in targets]] = normalised.transpose(1, 2)
    cont[:, :, [col[f"{t}_center"] for t in targets]] = torch.log1p(center)[:, None]
    cont[:, :, [col[f"{t}_scale"] for t in targets]] = torch.log1p(scale)[:, None]
    recurrence.fill(cont, spec, normalised, enc)
    target_scale = list(torch.stack([center, scale], dim=-1).transpose(0, 1).contiguous())
    return cont, target_scale


def _categorical_inputs(
    config: dict[str, Any], state_codes: torch.Tensor, server_codes: torch.Tensor, enc: int
) -> torch.Tensor:
    """(B, E + D, len(x_categoricals)) codes; states beyond the given steps are 0.

    Models from 2026-12 have no server_id input (see training.dataset); older ones do."""
    names = config["inputs"]["x_categoricals"]
    if sorted(names) not in (["state"], ["server_id", "state"]):
        raise ValueError(f"no input recipe for categoricals {names}")
    batch, length = state_codes.shape
    cat = torch.zeros(batch, enc + config["horizon"], len(names), dtype=torch.long)
    if "server_id" in names:
        cat[:, :, names.index("server_id")] = server_codes[:, None]
    cat[:, :length, names.index("state")] = state_codes
    return cat


def assemble_inputs(
    config: dict[str, Any],
    metrics: np.ndarray | torch.Tensor,
    state_codes: np.ndarray | torch.Tensor,
    server_codes: np.ndarray | torch.Tensor,
    times: np.ndarray,
    encoder_length: int | None = None,
) -> dict[str, Any]:
    """forward() inputs for B windows from numeric arrays, vectorised over the batch.

    metrics (B, L, 14) float32 real units in METRIC_COLUMNS order, state_codes (B, L)
    and server_codes (B,) int64 codes (categorical_encodings), times (B, E + D, K) scaled
    time features. L is E (inference: the decoder's unknown inputs are left 0, never
    read) or E + D (training: the decoder's targets and states are filled and
    normalised as TimeSeriesDataSet does). E = encoder_length, default L.
    """
    metrics = torch.as_tensor(metrics, dtype=torch.float32)
    enc = metrics.shape[1] if encoder_length is None else encoder_length
    cont, target_scale = _real_inputs(config, metrics, times, enc)
    cat = _categorical_inputs(
        config, torch.as_tensor(state_codes), torch.as_tensor(server_codes), enc
    )
    batch = metrics.shape[0]
    return {
        "encoder_cont": cont[:, :enc],
        "decoder_cont": cont[:, enc:],
        "encoder_cat": cat[:, :enc],
        "decoder_cat": cat[:, enc:],
        "encoder_lengths": torch.full((batch,), enc, dtype=torch.long),
        "decoder_lengths": torch.full((batch,), config["horizon"], dtype=torch.long),
        "target_scale": target_scale,
    }


def encode_categories(config: dict[str, Any], name: str, values: Any) -> np.ndarray:
    """Codes of ``values`` under the config's encoder ``name`` (unknown values: 0; all 0
    when the model has no such input, e.g. server_id in models from 2026-12)."""
    values = np.asarray(values, dtype=object)
    encodings = config["inputs"]["categorical_encodings"]
    if name not in encodings:
        return np.zeros(values.shape, dtype=np.int64)
    classes = encodings[name]["classes"]
    unique, inverse = np.unique(values, return_inverse=True)
    codes = np.array([classes.get(str(v), 0) for v in unique], dtype=np.int64)
    return codes[inverse].reshape(values.shape)


def build_inputs(
    config: dict[str, Any],
    metrics: np.ndarray,
    states: np.ndarray,
    server_ids: list[str],
    last_idx: np.ndarray,
) -> dict[str, Any]:
    """forward() inputs for B servers from gap-filled numpy histories (inference path).

    metrics (B, E, 14) in METRIC_COLUMNS order, states (B, E) state names, server_ids
    (B,) encoded names, last_idx (B,) time_idx of each server's last observed step; the
    forecast covers the ``horizon`` steps after it. E <= encoder_length (and >= the
    config's min_encoder_length for a model trained with variable lengths).
    """
    enc = np.asarray(metrics).shape[1]
    return assemble_inputs(
        config,
        np.asarray(metrics, dtype=np.float32),
        encode_categories(config, "state", states),
        encode_categories(config, "server_id", server_ids),
        window_times(config, last_idx, enc),
    )
