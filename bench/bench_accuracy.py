"""Benchmark live accuracy tracking: its cost per forecast pass, against the pass itself.

    python -m bench.bench_accuracy [--servers 1000] [--steps 100] [--threads 2]

1. A generated fleet of --servers servers is fed its first day, then stepped forward one
   5-minute step at a time for --steps steps. After each step, the pass's accuracy step
   (InferenceService.track_accuracy: score the forecasts whose truth has just closed,
   record the new ones) runs on every server's window, timed. Its forecasts are
   seasonal-naive stand-ins, so that the pending forecasts fill up as in the daemon without
   running the TFT --steps times; the cost does not depend on the numbers.
2. The daemon's forecast pass with the TFT is timed on the same servers, as
   bench/bench_forecast.py does (its timed_pass, best of --repeat; the pass includes the
   accuracy step).
3. The ratio: the accuracy step at the steps that score and record (every 3rd step) over
   the pass. Also: the /health summary, the ?accuracy=true rendering and the optional
   TFT_SERVE_BETTER_METHOD choice at this fleet size.
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from bench.bench_forecast import as_batch, timed_pass
from bench.bench_training import best_of
from fleet import generate as mg
from inference.accuracy import BYTES_PER_SERVER, EVERY, substitute
from inference.forecast import SeasonalNaiveForecaster, TFTForecaster
from inference.predictions import accuracy_fields
from inference.service import InferenceService
from inference.windows import window_values
from training import load_artifact

ROOT = Path(__file__).resolve().parents[1]


def step_forward(service: InferenceService, frame: pd.DataFrame, steps: int) -> dict:
    """Feed one step at a time; time the accuracy step after each: {last step: seconds}."""
    stand_in, times = SeasonalNaiveForecaster(), {}
    step = service.buffers.step_seconds
    frame_steps = (frame.timestamp - pd.Timestamp("1970-01-01", tz="UTC")) // pd.Timedelta(
        seconds=step
    )
    first = int(service.buffers.view("head").max()) + 1
    for k in range(first, first + steps):
        service.buffers.apply(as_batch(frame[frame_steps == k]), 0.0)
        rows = np.flatnonzero(service.buffers.ready())
        snapshot = service.buffers.snapshot(rows)
        values, states = window_values(snapshot)
        trajectory = stand_in.forecast(values, states, snapshot.servers, snapshot.last_step)
        start = time.perf_counter()
        service.track_accuracy(rows, snapshot, values, trajectory, service.forecaster)
        times[int(snapshot.last_step.max())] = time.perf_counter() - start
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=100, help="steps stepped (8 h = 96)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)

    frame = mg.generate_fleet(n_servers=args.servers, days=1.5, seed=3).frame
    cut = frame.timestamp.min() + pd.Timedelta(hours=24)  # 288 closed steps: ready
    service = InferenceService(forecaster=TFTForecaster(load_artifact(ROOT / "models" / "latest")))
    service.buffers.apply(as_batch(frame[frame.timestamp <= cut]), 0.0)
    times = step_forward(service, frame, args.steps)
    rows = np.flatnonzero(service.buffers.ready())
    scoring = np.array([t for last, t in times.items() if last % EVERY == 0])
    others = np.array([t for last, t in times.items() if last % EVERY != 0])
    scored = service.accuracy.report(rows)[2].sum(axis=0)
    print(
        f"accuracy step, {len(rows)} servers, {args.steps} steps (scored so far per horizon "
        f"30m/1h/8h: {scored.tolist()}): scoring + recording steps median "
        f"{1000 * np.median(scoring):.1f} ms (max {1000 * scoring.max():.1f} ms), other steps "
        f"median {1000 * np.median(others):.1f} ms"
    )
    pass_s = timed_pass(service, rows, args.repeat)
    ratio, worst = np.median(scoring) / pass_s, scoring.max() / pass_s
    print(
        f"forecast pass (TFT, {args.threads} torch threads, best of {args.repeat}, accuracy "
        f"step included): {pass_s:.2f} s; accuracy step / pass = {100 * ratio:.1f} % "
        f"(worst step {100 * worst:.1f} %)"
    )
    snapshot = service.buffers.snapshot(rows)
    values, states = window_values(snapshot)
    trajectory = SeasonalNaiveForecaster().forecast(values, states, [], snapshot.last_step)
    choose = best_of(
        3, lambda: substitute(trajectory, values, service.accuracy.better_methods(rows))
    )
    print(f"TFT_SERVE_BETTER_METHOD: choosing and substituting {1000 * choose:.1f} ms per pass")
    health = best_of(5, lambda: service.accuracy.summary(len(rows), True))
    render = best_of(5, lambda: accuracy_fields(*service.accuracy.report(rows)))
    print(
        f"/health accuracy summary {1000 * health:.1f} ms; ?accuracy=true blocks "
        f"{1000 * render:.1f} ms; {BYTES_PER_SERVER} bytes per server "
        f"({BYTES_PER_SERVER * 10_000 / 2**20:.1f} MiB for 10,000 servers)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
