"""Benchmark: the TFT forward pass, pytorch-forecasting's vs inference.fast_tft's.

Run: python -m bench.bench_forward [--servers 1000 --batch-size 250 --threads 2 --repeat 3]

Inputs: the shipped model (--model, default models/latest) and --servers windows of 288
steps built with training.inputs.build_inputs from random metrics (uniform 0-50),
"healthy" states and an unknown server id, all ending at the same step like a daemon
pass (--spread-steps N: ends spread over N steps, so time features differ per window).
Each repeat runs the whole pass (all batches, under torch.inference_mode) with the
library's model, then with an accelerated copy (fast_tft.accelerate on a second load);
the table gives the best of --repeat per variant, their ratio, and the largest absolute
difference of the predictions (real units). Timings are wall-clock and sensitive to
other load on the machine: the table gives the load average.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import data_contract as dc
from inference.fast_tft import accelerate
from training import load_artifact
from training.dataset import ENCODER_LENGTH
from training.inputs import build_inputs

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "models" / "latest"))
    parser.add_argument("--servers", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--spread-steps", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def make_batches(config: dict[str, Any], args: argparse.Namespace) -> list[dict[str, Any]]:
    rng = np.random.default_rng(args.seed)
    batches = []
    for start in range(0, args.servers, args.batch_size):
        n = min(args.batch_size, args.servers - start)
        metrics = (rng.random((n, ENCODER_LENGTH, len(dc.METRIC_COLUMNS))) * 50).astype(np.float32)
        states = np.full((n, ENCODER_LENGTH), "healthy", dtype=object)
        last = 5_900_000 + rng.integers(0, max(1, args.spread_steps), n)
        batches.append(build_inputs(config, metrics, states, ["ppml0001"] * n, last))
    return batches


def run_pass(model: torch.nn.Module, batches: list[dict[str, Any]]) -> tuple[float, list]:
    start = time.perf_counter()
    with torch.inference_mode():
        predictions = [model(x)["prediction"] for x in batches]
    return time.perf_counter() - start, predictions


def max_abs_difference(a: list, b: list) -> float:
    pairs = zip(sum(a, []), sum(b, []), strict=True)
    return max(float((p - q).abs().max()) for p, q in pairs)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    loaded = load_artifact(args.model)
    models = {"library": loaded.model, "fast_tft": accelerate(load_artifact(args.model).model)}
    batches = make_batches(loaded.config, args)
    for model in models.values():  # warm-up: one batch each
        run_pass(model, batches[:1])
    best = dict.fromkeys(models, float("inf"))
    outputs: dict[str, list] = {}
    for _ in range(args.repeat):
        for name, model in models.items():
            seconds, outputs[name] = run_pass(model, batches)
            best[name] = min(best[name], seconds)
    diff = max_abs_difference(outputs["fast_tft"], outputs["library"])
    print(
        f"TFT forward: {args.servers} windows, batch {args.batch_size}, "
        f"{args.threads} torch threads, best of {args.repeat}, "
        f"load average {os.getloadavg()[0]:.2f}, torch {torch.__version__}"
    )
    print(f"{'variant':10s} {'seconds':>8s} {'ms/window':>10s} {'speed-up':>9s}")
    for name, seconds in best.items():
        ratio = best["library"] / seconds
        per = 1e3 * seconds / args.servers
        print(f"{name:10s} {seconds:8.3f} {per:10.3f} {ratio:8.2f}x")
    print(f"max |fast_tft - library| over all predictions: {diff:.2e} (real units)")


if __name__ == "__main__":
    main()
