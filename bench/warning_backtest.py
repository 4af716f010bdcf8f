"""Backtest of the early-warning estimate (trouble/) on held-out data, beside the rules.

    python -m bench.warning_backtest --model build/models/tft_copy \
        --fleet build/corpus/server_metrics.parquet \
        --seed42 build/eval/seed42_realistic/server_metrics.parquet \
        --classic build/eval/seed42_classic/server_metrics.parquet --cores build/eval/cores20.json

Held-out sets: the generated fleet after the forecaster's --until (its held-out servers
alone too), the seed-42 fleets (realistic and classic; cutoff 2025-01-08), NAB's held-out
series and tails (training.nab) and Azure's held-out VMs and tails, mean and max
(training.azure). Origins every --every steps; each gets the daemon's window, the
forecaster's trajectory and the evidence. For the estimate's level (warning or critical
= a flag), "yesterday crossed", predict_linear 6h and today's daemon risk (risk.assess):
events / negatives, recall, false-alarm rate, precision at the set's event rate and the
median lead (bench/early_warning.py); and the calibration table per horizon on the
origins below critical. Markdown to stdout (and --out), every number with --json.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

import data_contract as dc  # noqa: E402
from bench import early_warning as ew  # noqa: E402
from env_settings import configure_logging
from training import scoring  # noqa: E402
from training import warning_data as wd  # noqa: E402
from trouble import evidence as ev  # noqa: E402
from trouble import fitting, levels  # noqa: E402
from trouble.model import HORIZON_NAMES, WarningModel  # noqa: E402

logger = logging.getLogger("warning_backtest")
SEED42_CUTOFF = "2025-01-08T00:00Z"  # the README's backtest of the seed-42 fleets
EVERY = 6


def method_flags(windows: np.ndarray, trajectory: np.ndarray, cores: np.ndarray) -> dict:
    """(n, M) flags of today's daemon risk and of the two rules, for the same origins."""
    horizon = ew.LEAD_MAX
    return {
        "risk": ew.model_flags(windows[:, -1], trajectory, cores),
        "snaive": ew.rule_flags(scoring.seasonal_naive(windows, horizon), cores),
        "linear": ew.rule_flags(scoring.linear_trend(windows, horizon), cores),
    }


def fleet_source(name: str, path: Path, cutoff: str, cores: dict | None = None) -> wd.Source:
    frame = pd.read_parquet(path)
    dc.require_valid(frame, source=str(path))
    return wd.Source(name, frame, pd.Timestamp(cutoff), cores=cores or {})


def heldout_sources(args: argparse.Namespace, info: dict) -> list[wd.Source]:
    """Every held-out set the arguments name."""
    from training import azure, nab

    sources = []
    if args.fleet:
        sources.append(fleet_source("generated held-out", args.fleet, info["until"]))
    if args.seed42:
        sources.append(fleet_source("seed-42 realistic", args.seed42, SEED42_CUTOFF))
    if args.classic:
        cores = json.loads(args.cores.read_text()) if args.cores else {}
        sources.append(fleet_source("seed-42 classic", args.classic, SEED42_CUTOFF, cores))
    real = {}
    if args.nab:
        real |= {f"NAB {k}": v for k, v in nab.heldout_frames(args.nab).items()}
    if args.azure:
        real |= {f"Azure {k}": v for k, v in azure.heldout_frames(args.azure).items()}
    for name, part in real.items():
        sources.append(wd.Source(name, part.frame, part.cutoff, part.measured))
    return sources


# --- scores ---------------------------------------------------------------------------

METHODS = {
    "estimate": "early-warning estimate",
    "snaive": "yesterday crossed",
    "linear": "predict_linear 6h",
    "risk": "daemon risk today",
}


def event_labels(g: wd.Gathered, now: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The issue's events and negatives (bench/early_warning.label) on scored metrics."""
    labels, lead = ew.label(now, g.future)
    return np.where(g.scored, labels, ew.NEITHER), lead


def warning_rows(labels: np.ndarray, lead: np.ndarray, flags: dict[str, np.ndarray]) -> list:
    """One row per method: counts, recall, false alarms, event rate, precision, lead."""
    return [
        {"method": METHODS[k]} | ew.with_precision(ew.warning_scores(labels, f, lead))
        for k, f in flags.items()
    ]


def calibration_rows(g: wd.Gathered, p: np.ndarray, now: np.ndarray) -> dict[str, list]:
    """Per horizon, the calibration table on the scored origins below critical now."""
    below = g.scored & (now < ev.CRITICAL)
    outcome = fitting.labels(g.future)
    return {
        name: ew.calibration_table(p[..., k][below], outcome[..., k][below])
        for k, name in enumerate(HORIZON_NAMES)
    }


MIN_BIN = 50  # the calibration goal counts the bins with at least this many origins


def worst_bins(calibration: dict[str, list]) -> dict[str, float | None]:
    """Per horizon, the largest |observed - predicted| over bins of >= MIN_BIN origins."""
    out = {}
    for horizon, rows in calibration.items():
        gaps = [abs(r["observed"] - r["predicted"]) for r in rows if r["origins"] >= MIN_BIN]
        out[horizon] = round(max(gaps), 3) if gaps else None
    return out


def evaluate(g: wd.Gathered, model: WarningModel, groups: dict[str, set]) -> dict:
    """Every number of one held-out set: per group of servers, warnings and calibration."""
    e = g.evidence()
    p, now = model.predict(e), e.facts["now"]
    thresholds = levels.Thresholds(**model.info["thresholds"])
    labels, lead = event_labels(g, now)
    flags = {"estimate": ew.estimate_flags(p, now, thresholds)}
    flags |= {k: g.extras[k] for k in ("snaive", "linear", "risk")}
    out = {}
    for group, members in ({"all servers": None} | groups).items():
        keep = (
            np.ones(len(g.servers), bool)
            if members is None
            else np.isin(g.servers, sorted(members))
        )
        sub = {k: f[keep] for k, f in flags.items()}
        out[group] = {
            "origins": int(keep.sum()),
            "servers": len(set(g.servers[keep].tolist())),
            "warnings": warning_rows(labels[keep], lead[keep], sub),
            "calibration": calibration_rows(g.take(keep), p[keep], now[keep]),
        }
        out[group]["calibration_worst"] = worst_bins(out[group]["calibration"])
    return out


# --- report ---------------------------------------------------------------------------

WARNING_COLUMNS = ("method", "events", "negatives", "event_rate", "recall")
WARNING_COLUMNS += ("false_alarm_rate", "precision", "median_lead_steps")
CALIBRATION_COLUMNS = ("bin", "origins", "predicted", "observed")


def table(rows: list[dict], columns: tuple[str, ...], title: str) -> str:
    lines = [f"**{title}**", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [f"{row[c]:.3f}" if isinstance(row[c], float) else str(row[c]) for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def markdown(name: str, result: dict) -> str:
    parts = [f"### {name}", ""]
    for group, part in result.items():
        head = f"{name}, {group} ({part['origins']} origins, {part['servers']} servers)"
        parts.append(table(part["warnings"], WARNING_COLUMNS, f"{head}: early warnings"))
        worst = ", ".join(f"{h} {v}" for h, v in part["calibration_worst"].items())
        parts.append(f"Largest calibration gap in bins of >= {MIN_BIN} origins: {worst}.\n")
        for horizon, rows in part["calibration"].items():
            filled = [r for r in rows if r["origins"]]
            title = f"{head}: calibration of P(critical within {horizon})"
            parts.append(table(filled, CALIBRATION_COLUMNS, title))
    return "\n".join(parts)


# --- timing ---------------------------------------------------------------------------


def _best(f, repeats: int) -> float:
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - start)
    return round(best * 1000, 2)


def time_pass(model: WarningModel, g: wd.Gathered, servers: int = 1000, repeats: int = 5) -> dict:
    """Best-of-`repeats` milliseconds for `servers` origins of a held-out set (6 risk
    metrics each): the contract columns' conversion (random values: its cost does not
    depend on them), the evidence, predict, and levels with reasons."""
    pick = np.linspace(0, len(g.servers) - 1, servers).astype(int)
    history, paths = g.history[pick], g.paths[pick]
    rng = np.random.default_rng(0)
    values = rng.uniform(0, 100, (servers, ev.HISTORY_STEPS, 14)).astype(np.float32)
    trajectory = np.sort(rng.uniform(0, 100, (servers, ev.HORIZON, 14, 3)), -1).astype(np.float32)
    cores = np.full(servers, 8.0)
    e = ev.compute(history, paths)
    p = model.predict(e)
    origins = [datetime(2025, 1, 6, 14, tzinfo=timezone.utc)] * servers
    thresholds = levels.Thresholds(**model.info["thresholds"])
    return {
        "servers": servers,
        "rows": servers * len(ev.CRITICAL),
        "convert_ms": _best(
            lambda: (ev.risk_history(values, cores), ev.forecast_paths(trajectory, cores)),
            repeats,
        ),
        "evidence_ms": _best(lambda: ev.compute(history, paths), repeats),
        "predict_ms": _best(lambda: model.predict(e), repeats),
        "levels_ms": _best(lambda: levels.assess(p, e, thresholds, origins), repeats),
        "flagged_metrics": int(levels.flags(p, e.facts["now"], thresholds).sum()),
    }


# --- command line ---------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from training import azure, nab

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", required=True, help="artifact folder with warning.*")
    p.add_argument("--warning", type=Path, help="warning.* folder (default: --model)")
    p.add_argument("--fleet", type=Path, help="the generated fleet the model trained on")
    p.add_argument("--seed42", type=Path, help="seed-42 realistic fleet parquet")
    p.add_argument("--classic", type=Path, help="seed-42 classic fleet parquet")
    p.add_argument("--cores", type=Path, help='JSON {"server": cores} of the classic fleet')
    p.add_argument("--nab", type=Path, nargs="?", const=nab.DEFAULT_DIR)
    p.add_argument("--azure", type=Path, nargs="?", const=azure.DEFAULT_DIR)
    p.add_argument("--every", type=int, default=EVERY, help="steps between origins")
    p.add_argument("--cache", type=Path, help="keep the origins here (<model name>/*.npz)")
    p.add_argument("--timing", action="store_true", help="also time the estimate's pass")
    p.add_argument("--out", type=Path, help="also write the markdown here")
    p.add_argument("--json", type=Path, help="write all numbers here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    import torch

    from inference.forecast import TFTForecaster
    from training.artifact import load_artifact

    args = parse_args(argv)
    configure_logging("INFO")
    torch.set_num_threads(1)
    loaded = load_artifact(args.model)
    model = WarningModel.load(args.warning or loaded.path)
    forecaster = TFTForecaster(loaded)
    holdout = {"unseen servers": set(loaded.training_info.get("holdout_servers") or [])}
    results, timing = {}, None
    for source in heldout_sources(args, loaded.training_info):
        cache = None if args.cache is None else args.cache / loaded.name
        g = wd.gathered(forecaster, source, args.every, cache, method_flags)
        groups = holdout if source.name == "generated held-out" else {}
        results[source.name] = evaluate(g, model, groups)
        if args.timing and timing is None:
            timing = time_pass(model, g)
    report = [f"## Early warnings of {loaded.name}\n", f"thresholds {model.info['thresholds']}\n"]
    report += [markdown(name, r) for name, r in results.items()]
    body = {"model": loaded.name, "thresholds": model.info["thresholds"], "sets": results}
    if timing:
        body["timing"] = timing
        report.append(f"Timing (best of 5, {results and next(iter(results))}): {timing}\n")
    text = "\n".join(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(body, indent=1, default=float))
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
