"""Benchmark: seconds per training epoch, pytorch-forecasting's loader vs the fast one.

Run: python -m bench.bench_training [--servers 20 --days 7 --batch-size 64 --threads N]

Data: metrics_generator.generate_fleet(servers, days, seed=42).frame; the model is the
trainer's TFT (hidden size 16 by default), encoder 288 and horizon 96 steps. Each case
trains one epoch through the trainer's own fit (lightning, early stopping, gradient
clipping) on the same training windows per epoch (stride 1), and the fast loader also
at the CPU default stride. The library case runs only --library-batches training
batches and --val-batches validation batches and is extrapolated to the whole epoch
from its steady per-batch time (said in the table); the fast cases run whole epochs.
Before that, a per-batch breakdown (best of --repeat): building one batch with each
loader, and the network's training step on it (forward, backward, gradient clipping
and the trainer's fused Adam step). Threads: --threads, default the trainer's (all
cores but one on CPU).

Timings are wall-clock and sensitive to other load on the machine: the table gives the
load average, and a breakdown row is the best of its repeats.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch

from fleet import generate as mg
from training import dataset
from training.fitting import fit, make_loaders, make_window_loaders
from training.metadata import build_config
from training.settings import (
    CPU_WINDOW_STRIDE,
    Hardware,
    TrainConfig,
    default_threads,
    detect_hardware,
    trainer_kwargs,
)
from training.splits import Splits, build_splits
from training.tft_trainer import make_model


@dataclass
class Setup:
    splits: Splits
    model_config: dict[str, Any]
    config: TrainConfig


class Timer(pl.Callback):
    """Wall-clock time at the end of each training / validation batch and per stage."""

    def __init__(self) -> None:
        self.marks: dict[str, list[float]] = {"train": [], "val": []}
        self.spans: dict[str, list[float]] = {}

    def _mark(self, key: str) -> None:
        self.marks[key].append(time.perf_counter())

    def on_train_epoch_start(self, *args: Any) -> None:
        self.spans["train"] = [time.perf_counter()]

    def on_train_batch_end(self, *args: Any) -> None:
        self._mark("train")

    def on_validation_start(self, *args: Any) -> None:
        self.spans["val"] = [time.perf_counter()]

    def on_validation_batch_end(self, *args: Any) -> None:
        self._mark("val")

    def on_validation_end(self, *args: Any) -> None:
        self.spans["val"].append(time.perf_counter())

    def per_batch(self, key: str) -> float:
        """Steady time per batch: between the first and the last batch end."""
        marks = self.marks[key]
        return (marks[-1] - marks[0]) / max(1, len(marks) - 1)


@dataclass
class Case:
    name: str
    stride: int
    batches: int
    windows: int
    per_batch: float
    train_s: float
    val_s: float
    how: str


def make_setup(args: argparse.Namespace) -> Setup:
    frame = mg.generate_fleet(n_servers=args.servers, days=args.days, seed=42).frame
    config = TrainConfig(
        epochs=1, hidden_size=args.hidden_size, batch_size=args.batch_size, progress_bar=False
    )
    params = dataset.dataset_parameters(config.encoder_length, config.horizon)
    splits = build_splits(dataset.prepare_frame(frame), params, config.val_fraction)
    model = make_model(splits.training, splits.train_part, config)
    model_config = build_config(model, splits.training, "UTC", config.step_seconds)
    return Setup(splits, model_config, config)


def loaders(setup: Setup, kind: str, stride: int, workers: int = 0) -> tuple:
    batch = setup.config.batch_size
    if kind == "library":
        return make_loaders(setup.splits.training, setup.splits.validation, batch, workers)
    return make_window_loaders(setup.splits, setup.model_config, batch, (stride, stride))


def run_epoch(
    setup: Setup, kind: str, stride: int, limits: tuple | None = None, workers: int = 0
) -> Case:
    """One epoch through training.fitting.fit; ``limits`` (train, val batches) or all."""
    pl.seed_everything(42, workers=True)
    pair = loaders(setup, kind, stride, workers)
    model = make_model(setup.splits.training, setup.splits.train_part, setup.config)
    config = setup.config
    if limits is not None:
        config = replace(config, limit_train_batches=limits[0], limit_val_batches=limits[1])
    timer = Timer()
    fit(model, pair, trainer_kwargs(config, Hardware("cpu", 0, 0, "CPU")), 3, [timer])
    n_train, n_val = len(pair[0]), len(pair[1])
    if limits is None:
        train_s = timer.marks["train"][-1] - timer.spans["train"][0]
        val_s = timer.spans["val"][1] - timer.spans["val"][0]
        how = "whole epoch"
    else:
        train_s, val_s = timer.per_batch("train") * n_train, timer.per_batch("val") * n_val
        how = f"{limits[0]} + {limits[1]} batches, extrapolated"
    name = f"library, {workers} loader workers" if kind == "library" else "fast"
    windows = n_train * setup.config.batch_size
    return Case(name, stride, n_train, windows, train_s / n_train, train_s, val_s, how)


def best_case(repeat: int, run: Any) -> Case:
    """The fastest training epoch of ``repeat`` runs."""
    cases = [run() for _ in range(repeat)]
    best = min(cases, key=lambda c: c.train_s)
    best.how += f", best of {repeat}" if repeat > 1 else ""
    return best


def best_of(repeat: int, func: Any) -> float:
    """Fastest wall-clock seconds of ``repeat`` calls."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - start)
    return best


def breakdown(setup: Setup, repeat: int) -> dict[str, float]:
    """Best seconds per batch: building it (each loader), and the network's step."""
    library = iter(loaders(setup, "library", 1)[0])
    fast = iter(loaders(setup, "fast", 1)[0])
    model = make_model(setup.splits.training, setup.splits.train_part, setup.config).train()
    optimiser = model.configure_optimizers()["optimizer"]  # the trainer's (fused) Adam
    x, y = next(fast)

    def step() -> None:
        optimiser.zero_grad()
        model.loss(model(x)["prediction"], y).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), setup.config.gradient_clip)
        optimiser.step()

    step()  # warm-up
    return {
        "library batch": best_of(repeat, lambda: next(library)),
        "fast batch": best_of(repeat, lambda: next(fast)),
        "forward + backward + clip + Adam step": best_of(repeat, step),
    }


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    if Path("/proc/cpuinfo").exists():
        names = [ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if "model name" in ln]
        cpu = names[0].split(":", 1)[1].strip() if names else cpu
    return (
        f"{platform.platform()}, {cpu}, {os.cpu_count()} CPUs, torch {torch.__version__} "
        f"with {torch.get_num_threads()} threads, Python {platform.python_version()}"
    )


def report(args: argparse.Namespace, parts: dict[str, float], cases: list[Case]) -> str:
    lib, fast = cases[0], cases[1]
    lines = [
        f"One training epoch: {args.servers} servers x {args.days:g} days, hidden size "
        f"{args.hidden_size}, batch {args.batch_size}, encoder {dataset.ENCODER_LENGTH}, "
        f"horizon {dataset.HORIZON}",
        f"machine: {machine()}; date: {dt.date.today().isoformat()}; "
        f"load average before/after: {args.load_before} / {os.getloadavg()[0]:.2f}",
        "",
        f"| per batch (best of {args.repeat}) | seconds |",
        "|---|---:|",
        *[f"| {name} | {seconds:.3f} |" for name, seconds in parts.items()],
        "",
        "| loader | stride | batches | s/batch | training epoch s | validation s | measured |",
        "|---|---:|---:|---:|---:|---:|---|",
        *[
            f"| {c.name} | {c.stride} | {c.batches} | {c.per_batch:.3f} | {c.train_s:.0f} "
            f"| {c.val_s:.0f} | {c.how} |"
            for c in cases
        ],
        "",
        f"Training epoch, same windows (stride 1): library / fast = "
        f"{lib.train_s / fast.train_s:.2f}x",
    ]
    if len(cases) > 2:
        lines.append(
            f"Library at stride 1 / fast at the CPU default stride {cases[2].stride}: "
            f"{lib.train_s / cases[2].train_s:.2f}x"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=20)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--hidden-size", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, help="torch threads (default: the trainer's)")
    parser.add_argument("--library-batches", type=int, default=30)
    parser.add_argument(
        "--library-workers",
        type=int,
        help="loader workers of the library case (default: the CPU profile's, as the "
        "trainer used before the fast loader)",
    )
    parser.add_argument("--val-batches", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5, help="breakdown repeats")
    parser.add_argument("--epoch-repeat", type=int, default=1, help="epoch runs per case")
    parser.add_argument("--stride", type=int, default=CPU_WINDOW_STRIDE)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads or default_threads(Hardware("cpu", 0, 0, "CPU")))
    args.load_before = f"{os.getloadavg()[0]:.2f}"
    setup = make_setup(args)
    parts = breakdown(setup, args.repeat)
    workers = args.library_workers
    if workers is None:
        workers = detect_hardware().num_workers
    runs = [("library", 1, (args.library_batches, args.val_batches), workers)]
    runs += [("fast", stride, None, 0) for stride in dict.fromkeys([1, args.stride])]
    cases = [best_case(args.epoch_repeat, lambda r=r: run_epoch(setup, *r)) for r in runs]
    sys.stdout.write(report(args, parts, cases))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
