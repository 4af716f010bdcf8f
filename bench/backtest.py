"""Backtest what the daemon serves: TFTForecaster on daemon-built windows, against baselines.

    python -m bench.backtest --model models/latest --data fleet.parquet --cutoff 2025-02-05
    python -m bench.backtest --model models/latest --nab
    python -m bench.backtest --model models/latest --azure

Origins (every --every steps, from the cutoff on) each get the window the daemon builds:
288 steps of values (gaps: state 'offline', metrics carried forward), state codes, the
server name and the step number. TFTForecaster forecasts them (accelerated forward,
clipping, as served); last value, seasonal naive, the last hour's mean and predict_linear
over 6 h forecast from the same windows (training.heldout, which the trainer uses for
each artifact's accuracy table). At 30 min / 1 h / 8 h, per metric: MAE, MASE (mean and
median over series; scale in training/scoring.py), p10-p90 coverage and the share of
series where the TFT's p50 beats last value. Early warnings (bench/early_warning.py): the
daemon's risk flags against "yesterday's curve crossed critical" and predict_linear.

--data: generated data scored after --cutoff; the model's held-out servers
(training_info.json "holdout_servers") are also scored alone. --nab: the held-out parts of
training/nab.py's split; --azure: the four of training/azure.py's (held-out VMs and tails,
mean and max apart). Markdown to stdout (and --out), all numbers with --json.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

import data_contract as dc
import risk
from bench import early_warning as ew
from env_settings import configure_logging
from training import azure, nab, scoring
from training.heldout import EVERY, Origins, accuracy_rows, gather, summary

ROOT = Path(__file__).resolve().parents[1]
logger = logging.getLogger("backtest")
METHODS = ("tft", *scoring.BASELINES)
RULES = {"tft": "daemon risk (TFT)", "snaive": "yesterday crossed", "linear": "predict_linear 6h"}


@dataclass
class Source:
    """A frame to score: origins from each server's cutoff (a timestamp, or per server)."""

    title: str
    frame: pd.DataFrame
    cutoff: pd.Timestamp | dict[str, pd.Timestamp]
    measured: dict[str, str] | None = None  # {server: the one real column} (NAB, Azure)
    groups: dict[str, set[str]] = field(default_factory=dict)


def measured_mask(panel: scoring.Panel, measured: dict[str, str] | None) -> np.ndarray:
    """(servers, 14) columns with real data (all, unless `measured` names one per server)."""
    if measured is None:
        return np.ones((len(panel.servers), len(dc.METRIC_COLUMNS)), dtype=bool)
    return np.array([[measured[s] == m for m in dc.METRIC_COLUMNS] for s in panel.servers])


def risk_mask(panel: scoring.Panel, measured: dict[str, str] | None) -> np.ndarray:
    """(servers, M) risk metrics with real data: cpu_used_pct = 100 - idle comes from a
    measured cpu_user_pct too (the importer sets idle = 100 - user)."""
    cols = measured_mask(panel, measured)
    sources = [risk.RISK_SOURCES[m] for m in risk.RISK_METRICS]
    mask = cols[:, [dc.METRIC_COLUMNS.index(c) for c in sources]]
    user = cols[:, dc.METRIC_COLUMNS.index("cpu_user_pct")]
    mask[:, risk.RISK_METRICS.index("cpu_used_pct")] |= user
    return mask


def labels_of(
    o: Origins, keep: np.ndarray, mask: np.ndarray, cores: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Early-warning labels (N, M) and first critical steps of the origins in `keep`
    (cores: each origin's server's); risk metrics without real data are never events nor
    negatives."""
    cores = cores[keep]
    now = ew.risk_values(o.values[keep, -1], cores)
    labels, lead = ew.label(now, ew.risk_values(o.truth[keep], cores[:, None]))
    return np.where(mask[o.pairs[keep, 0]], labels, ew.NEITHER), lead


def warning_rows(
    o: Origins, keep: np.ndarray, mask: np.ndarray, cores: np.ndarray
) -> tuple[list[dict], dict]:
    """Early-warning scores of the daemon's flags and the two rules, and events per metric."""
    labels, lead = labels_of(o, keep, mask, cores)
    windows, horizon, cores = o.values[keep], o.truth.shape[1], cores[keep]
    flags = {
        "tft": ew.model_flags(o.values[keep, -1], o.trajectory[keep], cores),
        "snaive": ew.rule_flags(scoring.seasonal_naive(windows, horizon), cores),
        "linear": ew.rule_flags(scoring.linear_trend(windows, horizon), cores),
    }
    rows = [{"method": RULES[k]} | ew.warning_scores(labels, f, lead) for k, f in flags.items()]
    events = {m: int((labels[:, i] == ew.EVENT).sum()) for i, m in enumerate(risk.RISK_METRICS)}
    return rows, events


def evaluate(forecaster, source: Source, every: int, cores: dict[str, float]) -> dict:
    """All numbers for one source: per group, per-metric rows, summary, early warnings."""
    logger.info("%s: scoring from %s", source.title, source.cutoff)
    o = gather(forecaster, source.frame, source.cutoff, every)
    servers = [o.panel.servers[s] for s in o.pairs[:, 0]]
    server_cores = np.array([cores.get(s, np.nan) for s in servers], dtype=np.float64)
    cols, risks = measured_mask(o.panel, source.measured), risk_mask(o.panel, source.measured)
    names = np.array(o.panel.servers, dtype=object)[o.pairs[:, 0]]
    groups = {"all servers": np.ones(len(o.pairs), dtype=bool)}
    groups |= {g: np.isin(names, sorted(members)) for g, members in source.groups.items()}
    result = {"title": source.title, "every": every, "groups": {}}
    result["floored_scales"] = int((o.floored & cols).sum())
    result["series"] = int(cols.sum())
    for g, keep in groups.items():
        rows = accuracy_rows(o, keep, cols)
        result["groups"][g] = {
            "origins": int(keep.sum()),
            "servers": int(len(set(o.pairs[keep, 0].tolist()))),
            "summary": summary(rows),
            "per_metric": rows,
        }
        result["groups"][g]["warnings"], result["groups"][g]["events_per_metric"] = warning_rows(
            o, keep, risks, server_cores
        )
    return result


# --- report ---------------------------------------------------------------------------

SUMMARY_COLUMNS = (
    "horizon",
    *(f"mase_{k}" for k in METHODS),
    *(f"mase_median_{k}" for k in METHODS),
    "coverage",
    "beats_last",
)
ROW_COLUMNS = ("metric", "horizon", "mae_tft", "mae_last", *(f"mase_{k}" for k in METHODS))
ROW_COLUMNS += ("mase_median_tft", "mase_median_last", "coverage", "beats_last")
WARNING_COLUMNS = ("method", "events", "negatives", "recall", "false_alarm_rate")
WARNING_COLUMNS += ("median_lead_steps",)


def table(rows: list[dict], columns: tuple[str, ...], title: str) -> str:
    """Rows as a markdown table under a bold title."""
    if not rows:
        return f"**{title}**: nothing to score\n"
    lines = [f"**{title}**", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [row[c] for c in columns]
        lines.append(
            "| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in cells) + " |"
        )
    return "\n".join(lines) + "\n"


def markdown(result: dict) -> str:
    """One source's report."""
    parts = [
        f"### {result['title']}",
        "",
        f"Origins every {result['every']} steps; {result['series']} scored series, "
        f"{result['floored_scales']} with a MASE scale raised to its floor.",
        "",
    ]
    for g, part in result["groups"].items():
        head = f"{g} ({part['origins']} origins, {part['servers']} servers)"
        parts.append(table(part["summary"], SUMMARY_COLUMNS, f"{head}: mean over metrics"))
        events = ", ".join(f"{m} {n}" for m, n in part["events_per_metric"].items() if n)
        parts.append(table(part["warnings"], WARNING_COLUMNS, f"{head}: early warnings"))
        parts.append(f"Events per risk metric: {events or 'none'}.\n")
        parts.append(table(part["per_metric"], ROW_COLUMNS, f"{head}: per metric"))
    return "\n".join(parts)


# --- command line ---------------------------------------------------------------------


def data_sources(path: Path, cutoff: str, servers: list[str] | None, info: dict) -> list[Source]:
    """A generated parquet scored after the cutoff; the model's held-out servers alone too."""
    frame = pd.read_parquet(path)
    if servers:
        frame = frame[frame["server_name"].isin(servers)].reset_index(drop=True)
    dc.require_valid(frame, source=str(path))
    unseen = set(info.get("holdout_servers") or []) & set(frame["server_name"])
    groups = {"unseen servers": unseen} if unseen else {}
    return [Source(f"{path} after {cutoff}", frame, pd.Timestamp(cutoff, tz="UTC"), None, groups)]


def nab_sources(directory: Path) -> list[Source]:
    """The held-out parts of training/nab.py's split."""
    return [
        Source(f"NAB {name}", part.frame, part.cutoff, part.measured)
        for name, part in nab.heldout_frames(directory).items()
    ]


def azure_sources(directory: Path) -> list[Source]:
    """The held-out parts of training/azure.py's split (only cpu_user_pct is measured)."""
    return [
        Source(f"Azure {name}", part.frame, part.cutoff, part.measured)
        for name, part in azure.heldout_frames(directory).items()
    ]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Backtest a TFT artifact against baselines.")
    parser.add_argument("--model", default=str(ROOT / "models" / "latest"))
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=Path, help="contract parquet (generated fleet)")
    source.add_argument("--nab", type=Path, nargs="?", const=nab.DEFAULT_DIR)
    source.add_argument("--azure", type=Path, nargs="?", const=azure.DEFAULT_DIR)
    parser.add_argument("--cutoff", help="with --data: origins from this time (UTC) on")
    parser.add_argument("--servers", nargs="+", help="with --data: only these servers")
    parser.add_argument("--every", type=int, help="steps between origins (12 real, 24 data)")
    parser.add_argument("--cores", type=Path, help='JSON {"server": cores} (load per core)')
    parser.add_argument("--out", type=Path, help="also write the markdown here")
    parser.add_argument("--json", type=Path, help="write all numbers here")
    args = parser.parse_args(argv)
    if args.data is not None and not args.cutoff:
        parser.error("--data needs --cutoff")
    return args


def main(argv: list[str] | None = None) -> int:
    import torch

    from inference.forecast import TFTForecaster
    from training.artifact import load_artifact

    args = parse_args(argv)
    configure_logging("INFO")
    torch.set_num_threads(1)
    loaded = load_artifact(args.model)
    forecaster = TFTForecaster(loaded)
    if args.data is not None:
        sources = data_sources(args.data, args.cutoff, args.servers, loaded.training_info)
    elif args.azure is not None:
        sources = azure_sources(args.azure)
    else:
        sources = nab_sources(args.nab)
    every = args.every or (EVERY if args.data is not None else 12)
    cores = json.loads(args.cores.read_text()) if args.cores else {}
    results = [evaluate(forecaster, s, every, cores) for s in sources]
    head = f"## Backtest of {loaded.name}\n\n`{' '.join(sys.argv[1:] if argv is None else argv)}`\n"
    report = "\n".join([head, *(markdown(r) for r in results)])
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        body = {"model": loaded.name, "forecaster": forecaster.info, "sources": results}
        args.json.write_text(json.dumps(body, indent=1, default=float, allow_nan=True))
    sys.stdout.write(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
