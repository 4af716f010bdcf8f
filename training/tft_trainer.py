"""Train the TFT on contract data and save a pickle-free artifact.

    python -m training.tft_trainer --data training/server_metrics.parquet --out models/ \
        --epochs 10 [--seed 42] [--max-servers K] [--hidden-size 16] [--batch-size B] \
        [--until 2025-02-01T00:00] [--holdout-servers K] [--window-stride S] [--threads N] \
        [--recurrence-inputs summaries yesterday | none]

The data is validated against the data contract first; each violation is logged and
the command exits with status 2. --holdout-servers, --until and --max-servers choose the
servers and rows (training.splits); the held-out servers and the others left out are
recorded in training_info.json. Device, batch size and worker count come from
gpu_profiles.setup_gpu() (CPU defaults if that module cannot be imported).

--recurrence-inputs (default: summaries yesterday) gives the network what the baselines
know (training.recurrence): per-target hour mean, hour max and day max of the window, and
for each forecast step the value one day earlier; "none" trains on today's inputs only
(needed for an encoder shorter than a day, and for --loader library).

Batches come from training.batches (--loader fast, the default) or from
pytorch-forecasting's TimeSeriesDataSet (--loader library); both give identical batches
for today's inputs. --window-stride S trains each epoch on every S-th window of each
series (a random phase per epoch); the default is 4 on CPU and 1 on GPU. Validation uses
a fixed subsample, every --val-window-stride-th window (default: the training stride),
the same windows every epoch. Early stopping keeps the best weights in memory (no
checkpoint files). Before saving, the model is scored on the data it did not train on, as
the daemon serves it, against last value and seasonal naive (training.heldout): the table
is training_info.json's "accuracy". After saving, the artifact is reloaded with
load_artifact and must reproduce the trained model's output.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pandas as pd
import torch
from pytorch_forecasting import TemporalFusionTransformer, TimeSeriesDataSet
from torch.utils.data import DataLoader

from data_contract import ContractError, create_server_mapping, require_valid
from env_settings import configure_logging
from training import dataset, deterministic, heldout, recurrence
from training.artifact import ArtifactError, load_artifact, save_artifact
from training.batches import epoch_windows
from training.dataset import to_utc
from training.fitting import fit, make_loaders, make_window_loaders, torch_threads
from training.metadata import build_config, build_training_info
from training.model import build_model
from training.normalizers import ANCHORS
from training.settings import (
    CPU_WINDOW_STRIDE,
    LOADERS,
    Hardware,
    RunSettings,
    TrainConfig,
    detect_hardware,
    run_settings,
    trainer_kwargs,
)
from training.splits import (
    Selection,
    Splits,
    build_splits,
    parse_until,
    select_training_data,
)

logger = logging.getLogger(__name__)


def verify_artifact(path: Path, model: TemporalFusionTransformer, x: dict[str, Any]) -> None:
    """The saved artifact must load and reproduce ``model``'s output on ``x``."""
    loaded = load_artifact(path)
    with torch.no_grad():
        expected = model.cpu()(x)["prediction"]
        actual = loaded.model(x)["prediction"]
    if not all(torch.allclose(a, e, atol=1e-6) for a, e in zip(actual, expected, strict=True)):
        raise ArtifactError(f"{path}: reloaded model does not reproduce the trained output")


def build_datasets(frame: pd.DataFrame, config: TrainConfig) -> tuple[pd.DataFrame, Splits]:
    """Prepared frame and its training/validation split for a contract-valid frame."""
    prepared = dataset.prepare_frame(frame, config.step_seconds)
    params = dataset.dataset_parameters(
        config.encoder_length, config.horizon, config.min_encoder_length, config.anchor
    )
    return prepared, build_splits(prepared, params, config.val_fraction)


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
        loss_weights=dataset.target_loss_weights(train_rows, skip=deterministic.RULES),
        optimizer_params=None if config.precision.startswith("16") else {"fused": True},
        recurrence_inputs=tuple(config.recurrence_inputs),
        step_seconds=config.step_seconds,
    )


def make_train_loaders(
    splits: Splits, model_config: dict[str, Any], run: RunSettings, config: TrainConfig
) -> tuple[DataLoader, DataLoader]:
    """The run's training and validation loaders (fast or library, see the module doc)."""
    if run.loader == "library":
        return make_loaders(splits.training, splits.validation, run.batch_size, run.num_workers)
    strides = (run.window_stride, run.val_window_stride)
    return make_window_loaders(splits, model_config, run.batch_size, strides, run.num_workers)


def run_info(
    config: TrainConfig, hw: Hardware, run: RunSettings, selection: Selection, started: float
) -> dict[str, Any]:
    """The training_info.json entries that describe this run."""
    until = selection.until
    return {
        "hardware_profile": hw.profile,
        "epochs": config.epochs,
        **asdict(run),
        "holdout_servers": selection.holdout,
        "unused_servers": selection.unused,
        "until": None if until is None else until.isoformat(),
        "train_config": {k: v for k, v in asdict(config).items() if k != "command"},
        "command": config.command or shlex.join(sys.argv),
        "training_seconds": round(time.monotonic() - started, 1),
    }


def describe_run(
    selection: Selection, prepared: pd.DataFrame, splits: Splits, losses: dict, extra: dict
) -> tuple[dict[str, Any], dict[str, dict[str, str]]]:
    """training_info.json and the server mapping of the servers the model has learnt."""
    mapping = create_server_mapping(splits.train_part["server_name"].unique())
    extra = extra | {
        "filled_steps": int(prepared["filled"].sum()),
        "servers": sorted(mapping["name_to_id"]),  # the servers the model has learnt
    }
    step = int(extra["train_config"]["step_seconds"])
    info = build_training_info(
        selection.frame, splits.training, splits.validation, losses, extra, step
    )
    return info, mapping


def time_zone(frame: pd.DataFrame) -> str | None:
    """The zone of the frame's timestamps (None: naive, taken as UTC)."""
    tz = frame["timestamp"].dt.tz
    return None if tz is None else str(tz)


def train(frame: pd.DataFrame, out_dir: Path | str, config: TrainConfig | None = None) -> Path:
    """Validate, select, prepare, train, save and verify; returns the artifact directory."""
    config = config or TrainConfig()
    require_valid(frame, "training data")
    if config.time_zone:
        frame = frame.assign(timestamp=to_utc(frame["timestamp"]).dt.tz_convert(config.time_zone))
    started = time.monotonic()
    pl.seed_everything(config.seed, workers=True)
    chosen = select_training_data(
        frame, config.until, config.holdout_servers, config.max_servers, seed=config.seed
    )
    prepared, splits = build_datasets(chosen.frame, config)
    model = make_model(splits.training, splits.train_part, config)
    hw = detect_hardware()
    run = run_settings(config, hw)
    model_config = build_config(model, splits.training, time_zone(frame), config.step_seconds)
    loaders = make_train_loaders(splits, model_config, run, config)
    logger.info("%s; batches per epoch: %d training, %d validation", run, *map(len, loaders))
    with torch_threads(run.threads):
        losses = fit(model, loaders, trainer_kwargs(config, hw), config.patience)
    extra = run_info(config, hw, run, chosen, started) | {
        "windows_per_epoch": {"train": epoch_windows(loaders[0]), "val": epoch_windows(loaders[1])}
    }
    info, mapping = describe_run(chosen, prepared, splits, losses, extra)
    forecaster = heldout.trained_forecaster(model, model_config, info, mapping)
    with torch_threads(run.threads):
        info["accuracy"] = heldout.score_model(forecaster, frame, info, config.encoder_length)
    path = save_artifact(out_dir, model.cpu(), model_config, info, mapping)
    verify_artifact(path, model, next(iter(loaders[1]))[0])
    return path


# --- command line --------------------------------------------------------------------


def _data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, default=Path("training/server_metrics.parquet"))
    p.add_argument("--out", type=Path, default=Path("models"))
    p.add_argument(
        "--max-servers",
        type=int,
        help="train on the first K servers by name (after --holdout-servers)",
    )
    p.add_argument(
        "--holdout-servers",
        type=int,
        default=0,
        help="leave K servers out of training entirely: a seeded draw (--seed) spread "
        "over the server profiles (the leading letters of the name)",
    )
    p.add_argument(
        "--time-zone",
        type=_zone,
        help="IANA zone of the fleet's business hours (default: the data's, else UTC); "
        "the artifact records it and the daemon computes calendar features in it",
    )
    p.add_argument("--until", type=_timestamp, help="train on rows before this time (naive: UTC)")
    p.add_argument("--encoder-length", type=int, default=dataset.ENCODER_LENGTH)
    p.add_argument("--horizon", type=int, default=dataset.HORIZON)
    p.add_argument("--val-fraction", type=float, default=0.2)


def _loader_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--batch-size", type=int, help="default: from the GPU/CPU profile")
    p.add_argument("--num-workers", type=int, help="default: 0 (fast), profile's (library)")
    p.add_argument("--threads", type=int, help="torch threads (default on CPU: all cores but one)")
    p.add_argument("--loader", choices=LOADERS, default="fast", help="batch builder")
    p.add_argument(
        "--window-stride",
        type=int,
        help=f"train on every S-th window per epoch (default {CPU_WINDOW_STRIDE} on CPU, 1 on GPU)",
    )
    p.add_argument(
        "--val-window-stride", type=int, help="validate on every S-th window (default: S)"
    )
    p.add_argument("--limit-train-batches", type=_int_or_float)
    p.add_argument("--limit-val-batches", type=_int_or_float)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m training.tft_trainer", description=__doc__.split("\n")[0]
    )
    _data_options(p)
    _loader_options(p)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--hidden-size", type=int, default=16)
    p.add_argument("--attention-heads", type=int, default=1, dest="attention_head_size")
    p.add_argument("--learning-rate", type=float, default=3e-3)
    p.add_argument(
        "--anchor",
        choices=ANCHORS,
        default=dataset.ANCHOR,
        help="window normalisation: around the last value (persistence = 0) or the mean",
    )
    p.add_argument(
        "--recurrence-inputs",
        nargs="+",
        choices=(*recurrence.INPUT_SETS, "none"),
        default=list(recurrence.DEFAULT),
        help="inputs of what recurs (training.recurrence): per-target window summaries "
        "(hour mean, hour max, day max) and the decoder's value one day earlier (needs a "
        "24 h encoder); 'none' trains on today's inputs only (default: %(default)s)",
    )
    p.add_argument("--patience", type=int, default=3)
    p.add_argument("--precision", default="32-true", help="lightning precision, e.g. bf16-mixed")
    p.add_argument("--no-progress-bar", action="store_false", dest="progress_bar")
    return p.parse_args(argv)


def _timestamp(text: str) -> str:
    """--until: any pandas timestamp text, kept as given (checked here)."""
    try:
        parse_until(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a timestamp: {text!r}") from exc
    return text


def _zone(text: str) -> str:
    """--time-zone: an IANA name such as Europe/Berlin (checked here)."""
    if not dataset.is_time_zone(text):
        raise argparse.ArgumentTypeError(f"not a time zone: {text!r} (e.g. Europe/Berlin)")
    return text


def _int_or_float(text: str) -> int | float:
    """A batch count (int) or a fraction of the epoch (float), as lightning takes them."""
    return float(text) if "." in text else int(text)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; exit status 0 ok, 1 unreadable or unusable data, 2 contract errors."""
    configure_logging()
    args = parse_args(argv)
    given = sys.argv[1:] if argv is None else argv
    command = shlex.join(["python", "-m", "training.tft_trainer", *given])
    fields = {k: v for k, v in vars(args).items() if k not in ("data", "out")}
    fields["recurrence_inputs"] = tuple(s for s in fields["recurrence_inputs"] if s != "none")
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
