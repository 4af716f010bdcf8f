"""Loading the forecaster: the TFT artifact, or (only if allowed) the labelled baseline."""

from __future__ import annotations

import logging
from pathlib import Path

import orjson
import torch

import data_contract as dc
from gpu_profiles import GPUConfig, setup_gpu
from inference.forecast import Forecaster, SeasonalNaiveForecaster, TFTForecaster
from inference.settings import DaemonSettings
from training.artifact import ArtifactError, LoadedModel, load_artifact
from training.dataset import ENCODER_LENGTH, HORIZON, STEP_SECONDS, is_time_zone
from training.model import QUANTILES

logger = logging.getLogger(__name__)

# Windows per model call on CPU: 256 was as fast, with a higher memory peak (README,
# bench_forecast). The CPU profile's 64 is the training spec's fallback, slower here.
CPU_FORECAST_BATCH = 128


class ModelLoadError(RuntimeError):
    """No model could be loaded; the message names the path and the problem."""


def load_forecaster(
    settings: DaemonSettings, path: Path | None = None, allow_baseline: bool = True
) -> Forecaster:
    """The TFT at path (default settings.model). If it cannot be loaded: ModelLoadError,
    or with settings.baseline (and allow_baseline) the seasonal naive forecaster."""
    path = path or settings.model
    try:
        gpu = setup_gpu() if torch.cuda.is_available() else None
        device = gpu.device if gpu is not None else "cpu"
        loaded = load_artifact(path, device=str(device))
        check_geometry(loaded)
    except (ArtifactError, OSError) as exc:
        if not (settings.baseline and allow_baseline):
            raise ModelLoadError(f"cannot load the TFT model {path}: {exc}") from exc
        logger.error(
            "cannot load the TFT model %s: %s. SERVING THE SEASONAL-NAIVE BASELINE "
            "(--baseline); /predict labels it kind=seasonal_naive",
            path,
            exc,
        )
        return SeasonalNaiveForecaster(reason=f"TFT not loaded: {exc}")
    logger.info("loaded TFT model %s on %s", loaded.name, device)
    return TFTForecaster(loaded, batch_size=forecast_batch_size(settings, gpu))


def forecast_batch_size(settings: DaemonSettings, gpu: GPUConfig | None) -> int:
    """Windows per model call: TFT_FORECAST_BATCH_SIZE when set; else the detected GPU
    profile's inference batch size (a larger GPU takes a pass in fewer calls); else
    CPU_FORECAST_BATCH. Logged with the reason, since it sets the pass's memory peak."""
    configured = settings.forecast_batch_size
    if configured is not None:
        size, why = int(configured), "TFT_FORECAST_BATCH_SIZE"
    elif gpu is not None and gpu.is_cuda:
        size, why = gpu.get_batch_size("inference"), f"the {gpu.profile.name} GPU profile"
    else:
        size, why = CPU_FORECAST_BATCH, "the CPU default; TFT_FORECAST_BATCH_SIZE is not set"
    logger.info("forecast batch size %d windows per model call (%s)", size, why)
    return size


def check_geometry(loaded: LoadedModel) -> None:
    """Refuse a model whose time geometry the daemon cannot serve (ArtifactError naming
    the config.json field): 5-minute steps, a 288-step encoder, a horizon of at least 96
    steps, p10/p50/p90 and the contract's targets. The daemon's buffers hold exactly this
    geometry; the model's own numbers are read from its config everywhere else."""
    config = loaded.config
    found = {name: config.get(name) for name in SERVED_GEOMETRY}
    for name, (wanted, ok) in SERVED_GEOMETRY.items():
        if not ok(found[name]):
            raise ArtifactError(
                f"{loaded.path / 'config.json'}: {name} is {found[name]!r}; this daemon "
                f"serves {wanted}. Retrain with the default geometry or run a matching daemon."
            )


SERVED_GEOMETRY = {
    "step_seconds": (f"{STEP_SECONDS}", lambda v: v == STEP_SECONDS),
    "encoder_length": (f"{ENCODER_LENGTH}", lambda v: v == ENCODER_LENGTH),
    "min_encoder_length": (f"{ENCODER_LENGTH}", lambda v: v == ENCODER_LENGTH),
    "horizon": (f"at least {HORIZON}", lambda v: isinstance(v, int) and v >= HORIZON),
    "quantiles": (f"{list(QUANTILES)}", lambda v: v == list(QUANTILES)),
    "targets": ("the contract's 14 metrics", lambda v: v == list(dc.METRIC_COLUMNS)),
    "time_zone": ("an IANA zone name or null", is_time_zone),
}


def reload_path(settings: DaemonSettings, body: bytes) -> Path:
    """The artifact a reload asks for ({"model": "name or path"}, default settings.model);
    it must lie inside settings.models_dir."""
    try:
        request = orjson.loads(body) if body.strip() else {}
    except orjson.JSONDecodeError as exc:
        raise ModelLoadError(f'body must be JSON like {{"model": "latest"}}: {exc}') from exc
    if not isinstance(request, dict) or not isinstance(request.get("model", ""), str):
        raise ModelLoadError('body must be a JSON object like {"model": "latest"}')
    if not request.get("model"):
        return settings.model
    root = settings.models_dir.resolve()
    try:
        path = (settings.models_dir / request["model"]).resolve()
    except (ValueError, OSError) as exc:  # a NUL in the name, a loop of links
        raise ModelLoadError(f"model: {request['model']!r} is not a usable path ({exc})") from None
    if not path.is_relative_to(root):
        raise ModelLoadError(f"{request['model']!r} is outside the models directory {root}")
    return path
