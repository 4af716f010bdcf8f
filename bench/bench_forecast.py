"""Benchmark the daemon's forecast pass against pytorch-forecasting's own predict().

    python -m bench.bench_forecast [--servers 1000] [--library-servers 200] [--threads 2]

1. pass: the daemon's batched forecast pass (buffers -> numpy inputs -> TFT -> risk ->
   cached JSON) for --servers ready servers of a generated fleet, best of --repeat.
2. side by side, on the same --library-servers windows: the pass, and the library path
   (prepare_frame -> TimeSeriesDataSet -> model.predict), per-server cost and the ratio.
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

import data_contract as dc
from fleet import generate as mg
from inference.forecast import TFTForecaster
from inference.ingest import STATE_CODES, Batch
from inference.service import InferenceService
from inference.worker import settle_memory
from training import dataset as tds
from training import load_artifact

ROOT = Path(__file__).resolve().parents[1]


def as_batch(frame: pd.DataFrame) -> Batch:
    seconds = (frame.timestamp - pd.Timestamp("1970-01-01", tz="UTC")) // pd.Timedelta("1s")
    return Batch(
        names=frame.server_name.tolist(),
        seconds=seconds.to_numpy(np.int64),
        states=frame.state.map(STATE_CODES).to_numpy(np.int8),
        values=frame[list(dc.METRIC_COLUMNS)].to_numpy(np.float64),
    )


def timed_pass(service: InferenceService, rows: np.ndarray, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        service.buffers.mark_dirty(rows)
        start = time.perf_counter()
        assert service.run_pass() == len(rows)
        best = min(best, time.perf_counter() - start)
        settle_memory()  # as the daemon's worker does after each pass
    return best


def library_predict(loaded, frame: pd.DataFrame) -> float:
    trainer = {"logger": False, "enable_progress_bar": False, "enable_model_summary": False}
    start = time.perf_counter()
    data = tds.dataset_from_json(loaded.config["dataset"], tds.prepare_frame(frame), predict=True)
    loaded.model.predict(data, mode="quantiles", batch_size=256, trainer_kwargs=trainer)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", type=int, default=1000)
    parser.add_argument("--library-servers", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128, help="windows per model call")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)

    frame = mg.generate_fleet(n_servers=args.servers, days=1.5, seed=3).frame
    cut = frame.timestamp.min() + pd.Timedelta(hours=26)  # the step at cut stays open
    loaded = load_artifact(ROOT / "models" / "latest")
    service = InferenceService(forecaster=TFTForecaster(loaded, batch_size=args.batch_size))
    service.buffers.apply(as_batch(frame[frame.timestamp <= cut]), 0.0)
    rows = np.flatnonzero(service.buffers.ready())
    seconds = timed_pass(service, rows, args.repeat)
    print(
        f"pass: {len(rows)} servers in {seconds:.2f} s ({args.threads} torch threads, "
        f"batch {args.batch_size}, best of {args.repeat})"
    )

    names = sorted(service.buffers.names)[: args.library_servers]
    subset = np.array([service.buffers.index[n] for n in names])
    ours = timed_pass(service, subset, args.repeat)
    future = frame[frame.server_name.isin(names) & (frame.timestamp < cut + pd.Timedelta(hours=8))]
    theirs = min(library_predict(loaded, future) for _ in range(args.repeat))
    n = len(names)
    print(
        f"side by side, {n} servers: daemon pass {ours:.2f} s ({1000 * ours / n:.1f} ms/server)"
        f", library predict(dataframe) {theirs:.2f} s ({1000 * theirs / n:.1f} ms/server): "
        f"{theirs / ours:.1f}x"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
