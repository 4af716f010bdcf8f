"""Train the TFT on contract data and save a pickle-free artifact.

    python -m training.tft_trainer --data training/server_metrics.parquet --out models/ \
        --epochs 10 [--seed 42] [--max-servers K] [--hidden-size 16] [--batch-size B]

The data is validated against the data contract first; each violation is logged and
the command exits with status 2. Device, batch size and worker count come from
gpu_profiles.setup_gpu() (CPU defaults if that module cannot be imported). Early
stopping keeps the best weights in memory (no checkpoint files). After saving, the
artifact is reloaded with load_artifact and must reproduce the trained model's output.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pandas as pd
import torch
from pytorch_forecasting import TemporalFusionTransformer, TimeSeriesDataSet

from data_contract import ContractError, create_server_mapping, require_valid
from training import dataset
from training.artifact import ArtifactError, load_artifact, save_artifact
from training.fitting import fit, make_loaders
from training.metadata import build_config, build_training_info
from training.model import build_model

logger = logging.getLogger(__name__)

CPU_BATCH_SIZE, CPU_WORKERS = 32, 0


@dataclass
class TrainConfig:
    """Training settings; None means 'from the hardware profile' or 'no limit'."""

    epochs: int = 10
    seed: int = 42
    max_servers: int | None = None
    hidden_size: int = 16
    attention_head_size: int = 1
    hidden_continuous_size: int = 8
    dropout: float = 0.1
    learning_rate: float = 3e-3
    batch_size: int | None = None
    num_workers: int | None = None
    encoder_length: int = dataset.ENCODER_LENGTH
    horizon: int = dataset.HORIZON
    min_encoder_length: int | None = None
    val_fraction: float = 0.2
    patience: int = 3
    gradient_clip: float = 0.1
    limit_train_batches: int | float | None = None
    limit_val_batches: int | float | None = None
    unknown_server_rate: float = 0.1
    precision: str = "32-true"
    progress_bar: bool = True
    step_seconds: int = dataset.STEP_SECONDS
    command: str | None = None


@dataclass
class Hardware:
    accelerator: str
    batch_size: int
    num_workers: int
    profile: str


def detect_hardware() -> Hardware:
    """Device and defaults from gpu_profiles; CPU defaults if it cannot be imported."""
    try:
        import gpu_profiles
    except ImportError as exc:
        logger.warning("gpu_profiles unavailable (%s): using CPU defaults", exc)
        return Hardware("cpu", CPU_BATCH_SIZE, CPU_WORKERS, "CPU (fallback)")
    gpu = gpu_profiles.setup_gpu()
    accelerator = "gpu" if gpu.device.type == "cuda" else "cpu"
    return Hardware(
        accelerator, gpu.get_batch_size("train"), gpu.get_num_workers(), gpu.profile.name
    )


def select_servers(frame: pd.DataFrame, max_servers: int | None) -> pd.DataFrame:
    """The first ``max_servers`` servers by name (all if None)."""
    if max_servers is None:
        return frame
    keep = sorted(frame["server_name"].unique())[:max_servers]
    return frame[frame["server_name"].isin(keep)]


def trainer_kwargs(config: TrainConfig, hw: Hardware) -> dict[str, Any]:
    """lightning.Trainer settings (deterministic on CPU, where it is cheap)."""
    return dict(
        max_epochs=config.epochs,
        accelerator=hw.accelerator,
        precision=config.precision,
        gradient_clip_val=config.gradient_clip,
        limit_train_batches=config.limit_train_batches,
        limit_val_batches=config.limit_val_batches,
        deterministic=hw.accelerator == "cpu",
        enable_progress_bar=config.progress_bar,
        enable_model_summary=config.progress_bar,
    )


def verify_artifact(path: Path, model: TemporalFusionTransformer, x: dict[str, Any]) -> None:
    """The saved artifact must load and reproduce ``model``'s output on ``x``."""
    loaded = load_artifact(path)
    with torch.no_grad():
        expected = model.cpu()(x)["prediction"]
        actual = loaded.model(x)["prediction"]
    if not all(torch.allclose(a, e, atol=1e-6) for a, e in zip(actual, expected, strict=True)):
        raise ArtifactError(f"{path}: reloaded model does not reproduce the trained output")


def build_datasets(
    frame: pd.DataFrame, config: TrainConfig
) -> tuple[pd.DataFrame, TimeSeriesDataSet, TimeSeriesDataSet]:
    """Prepared frame, training and validation datasets for a contract-valid frame."""
    prepared = dataset.prepare_frame(frame, config.step_seconds)
    params = dataset.dataset_parameters(
        config.encoder_length, config.horizon, config.min_encoder_length
    )
    train_set, val_set = dataset.build_datasets(prepared, params, config.val_fraction)
    return prepared, train_set, val_set


def make_model(
    train_set: TimeSeriesDataSet, train_rows: pd.DataFrame, config: TrainConfig
) -> TemporalFusionTransformer:
    """The TFT for ``train_set``, its loss weighted by the training rows' target spread."""
    return build_model(
        train_set,
        hidden_size=config.hidden_size,
        attention_head_size=config.attention_head_size,
        hidden_continuous_size=config.hidden_continuous_size,
        dropout=config.dropout,
        learning_rate=config.learning_rate,
        loss_weights=dataset.target_loss_weights(train_rows),
    )


def run_info(config: TrainConfig, hw: Hardware, batch: int, filled: int, started: float) -> dict:
    """The training_info.json entries that describe this run."""
    return {
        "hardware_profile": hw.profile,
        "epochs": config.epochs,
        "batch_size": batch,
        "filled_steps": filled,
        "train_config": {k: v for k, v in asdict(config).items() if k != "command"},
        "command": config.command or shlex.join(sys.argv),
        "training_seconds": round(time.monotonic() - started, 1),
    }


def train(frame: pd.DataFrame, out_dir: Path | str, config: TrainConfig | None = None) -> Path:
    """Validate, prepare, train, save and verify; returns the artifact directory."""
    config = config or TrainConfig()
    require_valid(frame, "training data")
    started = time.monotonic()
    pl.seed_everything(config.seed, workers=True)
    frame = select_servers(frame, config.max_servers)
    prepared, train_set, val_set = build_datasets(frame, config)
    train_rows = prepared[prepared.time_idx < val_set.min_prediction_idx]
    model = make_model(train_set, train_rows, config)
    hw = detect_hardware()
    batch = config.batch_size or hw.batch_size
    workers = hw.num_workers if config.num_workers is None else config.num_workers
    loaders = make_loaders(train_set, val_set, batch, workers, config.unknown_server_rate)
    logger.info(
        "training windows: %d, validation: %d, batch %d", len(train_set), len(val_set), batch
    )
    losses = fit(model, loaders, trainer_kwargs(config, hw), config.patience)
    mapping = create_server_mapping(train_rows["server_name"].unique())
    extra = run_info(config, hw, batch, int(prepared["filled"].sum()), started)
    extra["servers"] = sorted(mapping["name_to_id"])  # the servers the model has learnt
    info = build_training_info(frame, train_set, val_set, losses, extra, config.step_seconds)
    tz = frame["timestamp"].dt.tz
    cfg = build_config(model, train_set, None if tz is None else str(tz), config.step_seconds)
    path = save_artifact(out_dir, model.cpu(), cfg, info, mapping)
    verify_artifact(path, model, next(iter(loaders[1]))[0])
    return path


# --- command line --------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m training.tft_trainer", description=__doc__.split("\n")[0]
    )
    p.add_argument("--data", type=Path, default=Path("training/server_metrics.parquet"))
    p.add_argument("--out", type=Path, default=Path("models"))
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--max-servers", type=int)
    p.add_argument("--hidden-size", type=int, default=16)
    p.add_argument("--attention-heads", type=int, default=1, dest="attention_head_size")
    p.add_argument("--batch-size", type=int, help="default: from the GPU/CPU profile")
    p.add_argument("--num-workers", type=int, help="default: from the GPU/CPU profile")
    p.add_argument("--learning-rate", type=float, default=3e-3)
    p.add_argument("--encoder-length", type=int, default=dataset.ENCODER_LENGTH)
    p.add_argument("--horizon", type=int, default=dataset.HORIZON)
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--patience", type=int, default=3)
    p.add_argument("--limit-train-batches", type=_int_or_float)
    p.add_argument("--limit-val-batches", type=_int_or_float)
    p.add_argument("--precision", default="32-true", help="lightning precision, e.g. bf16-mixed")
    p.add_argument("--no-progress-bar", action="store_false", dest="progress_bar")
    return p.parse_args(argv)


def _int_or_float(text: str) -> int | float:
    """A batch count (int) or a fraction of the epoch (float), as lightning takes them."""
    return float(text) if "." in text else int(text)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; exit status 0 ok, 1 unreadable or unusable data, 2 contract errors."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    args = parse_args(argv)
    given = sys.argv[1:] if argv is None else argv
    command = shlex.join(["python", "-m", "training.tft_trainer", *given])
    fields = {k: v for k, v in vars(args).items() if k not in ("data", "out")}
    config = TrainConfig(**fields, command=command)
    try:
        frame = pd.read_parquet(args.data)
    except (OSError, ValueError) as exc:
        logger.error("cannot read training data %s: %s", args.data, exc)
        return 1
    try:
        path = train(frame, args.out, config)
    except ContractError as exc:
        for error in exc.errors:
            logger.error("data contract violation: %s", error)
        logger.error("%s refused: %d contract error(s)", args.data, len(exc.errors))
        return 2
    except ValueError as exc:  # e.g. too little history for the encoder and horizon
        logger.error("cannot train on %s: %s", args.data, exc)
        return 1
    logger.info("model artifact written to %s", path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
