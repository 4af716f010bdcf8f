"""Compare input candidates (training.recurrence): forecast pass time and backtest tables.

    python -m bench.compare_inputs passtime --models A B ... [--servers 1000 --threads 2] \
        [--daemon]
    python -m bench.compare_inputs table --runs NAME=PREFIX ... [--out FILE]
    python -m bench.compare_inputs fleet --fleet FLEET.parquet --end TIME --out SUBSET.parquet \
        --split SPLIT.json [--train 40 --heldout 20]

passtime: the daemon's forecaster (TFTForecaster: numpy windows -> inputs -> accelerated
TFT -> sorted, clipped quantiles) over --servers random 288-step windows, for each model
in turn within each of --repeat rounds (so load on the machine hits every model alike);
the best round per model (wall-clock and process CPU time), and its ratio to the first.
--daemon times the daemon's whole pass instead (bench/bench_forecast.py's: buffers of a
generated fleet -> inputs -> TFT -> risk -> cached JSON).

table: each run's backtest JSONs (bench/backtest.py --json), PREFIX_azure.json,
PREFIX_nab.json and PREFIX_data.json where present: mean MASE of the TFT against the best
of the four baselines at 30 min / 1 h / 8 h, the ratio, and the p10-p90 coverage. Azure
and NAB: cpu_user_pct only (the measured column); the generated fleet: mem_used_pct and
cpu_user_pct rows, and the mean over all metrics.

fleet: the candidates' small corpus fleet: --train + --heldout servers drawn across the
profiles (training.splits.holdout_servers, seeds 1 and 2), the --train ones before --end
written to --out; both lists to --split (the --heldout ones are scored with
bench/backtest.py --data FLEET --servers ...).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import data_contract as dc
from bench.bench_forecast import as_batch, timed_pass
from fleet import generate as mg
from inference.forecast import TFTForecaster
from inference.loading import CPU_FORECAST_BATCH
from inference.service import InferenceService
from training import load_artifact
from training.dataset import ENCODER_LENGTH
from training.scoring import BASELINES, HORIZONS
from training.splits import holdout_servers

PARTS = {
    "azure": ("Azure held-out VMs (mean)", "Azure held-out VMs (max)"),
    "nab": ("NAB held-out series", "NAB held-out tails"),
    "data": ("",),
}


def _windows(servers: int, seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    metrics = len(dc.METRIC_COLUMNS)
    levels = rng.uniform(1, 80, (servers, 1, metrics))
    values = (rng.random((servers, ENCODER_LENGTH, metrics)) * levels).astype(np.float32)
    return values, np.zeros((servers, ENCODER_LENGTH), dtype=np.int8), np.full(servers, 5_900_000)


def forecast_runner(model: str, servers: int, seed: int = 0) -> Callable[[], None]:
    """One TFTForecaster.forecast over `servers` random 288-step windows."""
    forecaster = TFTForecaster(load_artifact(model))
    values, states, last = _windows(servers, seed)
    names = [f"s{i}" for i in range(servers)]
    return lambda: forecaster.forecast(values, states, names, last)


def daemon_runner(model: str, servers: int) -> Callable[[], None]:
    """The daemon's whole pass (bench/bench_forecast.py: buffers -> inputs -> TFT -> risk
    -> cached JSON) over `servers` ready servers of a generated fleet."""
    forecaster = TFTForecaster(load_artifact(model), batch_size=CPU_FORECAST_BATCH)
    service = InferenceService(forecaster=forecaster)
    frame = mg.generate_fleet(n_servers=servers, days=1.5, seed=3).frame
    cut = frame.timestamp.min() + pd.Timedelta(hours=26)
    service.buffers.apply(as_batch(frame[frame.timestamp <= cut]), 0.0)
    rows = np.flatnonzero(service.buffers.ready())
    return lambda: timed_pass(service, rows, 1)


def pass_times(runners: list[Callable[[], None]], repeat: int) -> list[tuple[float, float]]:
    """Best (wall-clock, process CPU) seconds of each runner, taken in turn each round.
    CPU time is the steadier number on a shared machine."""
    best = [(float("inf"), float("inf"))] * len(runners)
    for _ in range(repeat):
        for i, run in enumerate(runners):
            wall, cpu = time.perf_counter(), time.process_time()
            run()
            took = (time.perf_counter() - wall, time.process_time() - cpu)
            best[i] = (min(best[i][0], took[0]), min(best[i][1], took[1]))
    return best


def _inputs(model: str) -> str:
    kinds = {e["kind"] for e in load_artifact(model).config["inputs"]["reals"].values()}
    return ", ".join(k for k in ("window_summary", "yesterday") if k in kinds) or "today's"


def passtime_report(args: argparse.Namespace) -> str:
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    make = daemon_runner if args.daemon else forecast_runner
    best = pass_times([make(m, args.servers) for m in args.models], args.repeat)
    what = "Daemon pass" if args.daemon else "Forecast pass"
    lines = [
        f"{what}, {args.servers} servers, {args.threads} torch threads, best of "
        f"{args.repeat} (load average before: {load:.1f}):",
        "",
        "| model | inputs | wall s | ratio | CPU s | ratio |",
        "|---|---|---|---|---|---|",
    ]
    for model, (wall, cpu) in zip(args.models, best, strict=True):
        ratios = f"{wall:.3f} | {wall / best[0][0]:.3f} | {cpu:.3f} | {cpu / best[0][1]:.3f}"
        lines.append(f"| {model} | {_inputs(model)} | {ratios} |")
    return "\n".join(lines) + "\n"


# --- backtest tables --------------------------------------------------------------------


def _summary(source: dict, group: str = "all servers") -> dict[str, dict]:
    return {row["horizon"]: row for row in source["groups"][group]["summary"]}


def _metric_rows(source: dict, metric: str) -> dict[str, dict]:
    rows = source["groups"]["all servers"]["per_metric"]
    return {row["horizon"]: row for row in rows if row["metric"] == metric}


def _cell(rows: dict[str, dict]) -> str:
    """'TFT / best baseline (ratio)' at each horizon, and the coverage range."""
    parts = []
    for h in HORIZONS:
        row = rows[h]
        best = min(row[f"mase_{b}"] for b in BASELINES)
        parts.append(f"{row['mase_tft']:.3f} / {best:.3f} ({row['mase_tft'] / best:.2f})")
    cover = [rows[h]["coverage"] for h in HORIZONS]
    return " ; ".join(parts) + f" | {min(cover):.2f}-{max(cover):.2f}"


def run_cells(prefix: str) -> dict[str, str]:
    """{column: cell} for one candidate's backtest JSONs."""
    cells = {}
    for kind, titles in PARTS.items():
        path = Path(f"{prefix}_{kind}.json")
        if not path.exists():
            continue
        sources = json.loads(path.read_text())["sources"]
        for title in titles:
            for source in sources:
                if not source["title"].startswith(title or source["title"]):
                    continue
                if kind == "data":
                    cells["generated memory"] = _cell(_metric_rows(source, "mem_used_pct"))
                    cells["generated CPU"] = _cell(_metric_rows(source, "cpu_user_pct"))
                    cells["generated mean"] = _cell(_summary(source))
                else:
                    cells[source["title"]] = _cell(_summary(source))
    return cells


def table_report(args: argparse.Namespace) -> str:
    head = "MASE TFT / best baseline (ratio) at 30m ; 1h ; 8h | p10-p90 coverage"
    lines = [head, "", "| candidate | data | MASE | coverage |", "|---|---|---|---|"]
    for run in args.runs:
        name, prefix = run.split("=", 1)
        for column, cell in run_cells(prefix).items():
            mase, cover = cell.split(" | ")
            lines.append(f"| {name} | {column} | {mase} | {cover} |")
    return "\n".join(lines) + "\n"


def fleet_subset(args: argparse.Namespace) -> str:
    frame = pd.read_parquet(args.fleet)
    names = sorted(frame["server_name"].unique())
    picked = holdout_servers(names, args.train + args.heldout, seed=1)
    train = holdout_servers(picked, args.train, seed=2)
    held = sorted(set(picked) - set(train))
    keep = frame["server_name"].isin(train) & (frame["timestamp"] < pd.Timestamp(args.end))
    frame[keep].to_parquet(args.out, index=False)
    args.split.write_text(json.dumps({"train": train, "heldout": held}, indent=1))
    return f"{int(keep.sum())} rows of {len(train)} servers -> {args.out}; held out: {held}\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("passtime")
    p.add_argument("--models", nargs="+", required=True)
    p.add_argument("--servers", type=int, default=1000)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--daemon", action="store_true", help="the whole daemon pass")
    t = sub.add_parser("table")
    t.add_argument("--runs", nargs="+", required=True, help="NAME=PREFIX of backtest JSONs")
    for q in (p, t):
        q.add_argument("--out", type=Path, help="also write the markdown here")
    f = sub.add_parser("fleet")
    f.add_argument("--fleet", type=Path, required=True)
    f.add_argument("--end", required=True)
    f.add_argument("--out", type=Path, required=True)
    f.add_argument("--split", type=Path, required=True)
    f.add_argument("--train", type=int, default=40)
    f.add_argument("--heldout", type=int, default=20)
    args = parser.parse_args(argv)
    if args.command == "fleet":
        sys.stdout.write(fleet_subset(args))
        return 0
    report = passtime_report(args) if args.command == "passtime" else table_report(args)
    if args.out:
        args.out.write_text(report)
    sys.stdout.write(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
