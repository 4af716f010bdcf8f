"""Training settings: the trainer's options, the hardware defaults, and resolving them.

TrainConfig holds the options as given (None: a default); run_settings resolves the
loader defaults for the hardware: batch size and workers from gpu_profiles, the
training window stride CPU_WINDOW_STRIDE on CPU (1 on GPU and for the library loader),
the validation stride equal to the training stride, torch's thread count (one core
left free on CPU, see default_threads).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch

from training import dataset, recurrence

logger = logging.getLogger(__name__)

CPU_BATCH_SIZE, CPU_WORKERS = 32, 0
#: Training window stride on CPU: an epoch sees every 4th window (random phase), about
#: a quarter of the cost of stride 1 for nearly the same information (consecutive windows
#: share 383 of 384 steps); over 4 epochs every window is seen about once.
CPU_WINDOW_STRIDE = 4
LOADERS = ("fast", "library")


@dataclass
class TrainConfig:
    """Training settings; None means 'from the hardware profile' or 'no limit'."""

    epochs: int = 10
    seed: int = 42
    max_servers: int | None = None
    holdout_servers: int = 0
    time_zone: str | None = None
    anchor: str = dataset.ANCHOR
    recurrence_inputs: tuple[str, ...] = recurrence.DEFAULT
    until: str | None = None
    hidden_size: int = 16
    attention_head_size: int = 1
    hidden_continuous_size: int = 8
    dropout: float = 0.1
    learning_rate: float = 3e-3
    batch_size: int | None = None
    num_workers: int | None = None
    threads: int | None = None
    loader: str = "fast"
    window_stride: int | None = None
    val_window_stride: int | None = None
    encoder_length: int = dataset.ENCODER_LENGTH
    horizon: int = dataset.HORIZON
    min_encoder_length: int | None = None
    val_fraction: float = 0.2
    patience: int = 3
    gradient_clip: float = 0.1
    limit_train_batches: int | float | None = None
    limit_val_batches: int | float | None = None
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


@dataclass
class RunSettings:
    """The effective loader settings of a run (defaults resolved)."""

    loader: str
    batch_size: int
    num_workers: int
    window_stride: int
    val_window_stride: int
    threads: int


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


def default_threads(hw: Hardware) -> int:
    """torch threads: on CPU one core is left free (1 thread on a 2-core machine).

    A torch thread pool that shares its cores with any other busy process stalls at
    every parallel region: on 2 cores, 2 threads took 1.1 to 18 s per batch of 64 next to
    one other training, 1 thread 0.8 s; alone, 2 threads took 0.55 s and 1 thread 0.70 s.
    --threads N overrides (e.g. all cores on a machine that runs nothing else)."""
    available = torch.get_num_threads()
    return max(1, available - 1) if hw.accelerator == "cpu" else available


def run_settings(config: TrainConfig, hw: Hardware) -> RunSettings:
    """Resolve the defaults: the fast loader builds batches in the main process (0
    workers); stride CPU_WINDOW_STRIDE on CPU, 1 on GPU and for the library loader."""
    if config.loader not in LOADERS:
        raise ValueError(f"--loader must be one of {LOADERS}, got {config.loader!r}")
    library = config.loader == "library"
    auto = 1 if library or hw.accelerator != "cpu" else CPU_WINDOW_STRIDE
    stride = auto if config.window_stride is None else config.window_stride
    val_stride = stride if config.val_window_stride is None else config.val_window_stride
    if min(stride, val_stride) < 1 or (config.threads is not None and config.threads < 1):
        raise ValueError("window strides and --threads must be at least 1")
    if library and (stride, val_stride) != (1, 1):
        raise ValueError("--loader library uses every window: window strides must be 1")
    if library and recurrence.check_sets(config.recurrence_inputs):
        raise ValueError(
            "--loader library cannot build --recurrence-inputs: use --loader fast, or "
            "--recurrence-inputs none"
        )
    workers = config.num_workers
    if workers is None:
        workers = hw.num_workers if library else 0
    threads = config.threads or default_threads(hw)
    batch = config.batch_size or hw.batch_size
    return RunSettings(config.loader, batch, workers, stride, val_stride, threads)


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
