"""What the early-warning estimate costs the daemon: the forecast pass and /predict's bytes.

    python -m bench.bench_warning --model DIR [--before DIR] [--servers 1000] [--threads 2]

For --servers ready servers of a generated fleet (36 h of history, so that every server
has the estimate's 27 h), interleaved, best of --repeat each:

* the pass with the model's estimate, and the same model with risk.py's rules instead;
* with --before (e.g. the previously shipped model, without the new inputs or an
  estimate), that model's pass too, so the new model's whole cost is in one run;
* the /predict body's size in each case.
"""

from __future__ import annotations

import argparse
import logging
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from bench.bench_forecast import as_batch, timed_pass
from fleet import generate as mg
from inference import early_warning as ew
from inference.buffers import FleetBuffers
from inference.forecast import TFTForecaster
from inference.service import InferenceService
from inference.views import predict_parts
from training import load_artifact


def service_for(path: Path, frame: pd.DataFrame, estimate: bool) -> InferenceService:
    forecaster = TFTForecaster(load_artifact(path), batch_size=128)
    warning = ew.load_warning(path) if estimate else None
    buffers = FleetBuffers(history_steps=ew.HISTORY_STEPS)
    service = InferenceService(forecaster=forecaster, buffers=buffers, warning=warning)
    service.buffers.apply(as_batch(frame), 0.0)
    return service


def predict_bytes(service: InferenceService) -> int:
    return sum(len(part) for part in predict_parts(service))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=Path("models/latest"))
    parser.add_argument("--before", type=Path, help="a model to compare with, in the same run")
    parser.add_argument("--servers", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    frame = mg.generate_fleet(n_servers=args.servers, days=1.5, seed=3).frame
    frame = frame[frame.timestamp <= frame.timestamp.min() + pd.Timedelta(hours=28)]
    cases = {"estimate": (args.model, True), "rules": (args.model, False)}
    if args.before is not None:
        cases["before"] = (args.before, False)
    services = {name: service_for(path, frame, on) for name, (path, on) in cases.items()}
    rows = {name: np.flatnonzero(s.buffers.ready()) for name, s in services.items()}
    best = dict.fromkeys(services, float("inf"))
    for _ in range(args.repeat):
        for name, service in services.items():
            best[name] = min(best[name], timed_pass(service, rows[name], 1))
    for name, service in services.items():
        size = predict_bytes(service)
        print(
            f"{name}: pass of {len(rows[name])} servers {best[name]:.3f} s "
            f"(best of {args.repeat}, {args.threads} threads); /predict {size:,} B"
        )
    base = best.get("before", best["rules"])
    print(f"estimate / {'before' if 'before' in best else 'rules'}: {best['estimate'] / base:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
