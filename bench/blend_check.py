"""Would a post-hoc blend help? TFT p50 blended with seasonal naive and the hour mean.

    python -m bench.blend_check --model DIR --corpus CORPUS.parquet --fleet FLEET.parquet \
        --servers S1 S2 ... --cutoff 2025-01-28T00:00Z

Per metric and horizon step k, weights (a_snaive, a_hour) of

    p50' = p50 + a_snaive * (snaive - p50) + a_hour * (hour_mean - p50)

are fitted by least squares on the model's validation period (the corpus from its
training_info's validation_start on: not trained on), errors divided by each series'
MASE scale, each weight clipped to [0, 1]. The fitted blend is then scored, beside the
TFT and the baselines, on the held-out sets: Azure held-out VMs (mean, max) and NAB's
held-out series and tails (cpu_user_pct / the measured column), and the generated
--fleet's --servers after --cutoff (mem_used_pct, cpu_user_pct). Mean MASE over series at
30 min / 1 h / 8 h. Nothing is served: this measures whether the blend is worth building.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import data_contract as dc
from inference.forecast import TFTForecaster
from training import azure, load_artifact, nab, scoring
from training.heldout import Origins, gather

BLENDED = ("snaive", "hour_mean")
USER, MEMORY = dc.METRIC_COLUMNS.index("cpu_user_pct"), dc.METRIC_COLUMNS.index("mem_used_pct")


def candidates(o: Origins) -> dict[str, np.ndarray]:
    """(N, horizon, 14) point forecasts: the TFT's p50 and the two baselines it is blended
    with, from the same windows."""
    horizon = o.truth.shape[1]
    return {
        "tft": o.trajectory[..., 1].astype(np.float64),
        "snaive": scoring.seasonal_naive(o.values, horizon),
        "hour_mean": scoring.hour_mean(o.values, horizon),
    }


def fit_weights(o: Origins) -> np.ndarray:
    """(horizon, 14, 2) least-squares weights of (snaive - p50, hour_mean - p50) for the
    residual truth - p50, in MASE-scaled units, clipped to [0, 1]."""
    points, scale = candidates(o), o.scale[o.pairs[:, 0]][:, None, :]
    y = (o.truth - points["tft"]) / scale
    x = np.stack([(points[b] - points["tft"]) / scale for b in BLENDED], -1)
    ok = np.isfinite(y) & np.isfinite(x).all(-1)
    x, y = np.where(ok[..., None], x, 0.0), np.where(ok, y, 0.0)
    gram = np.einsum("nhmi,nhmj->hmij", x, x) + 1e-6 * np.eye(2)
    rhs = np.einsum("nhmi,nhm->hmi", x, y)[..., None]
    return np.clip(np.linalg.solve(gram, rhs)[..., 0], 0.0, 1.0)


def blended(o: Origins, weights: np.ndarray) -> np.ndarray:
    points = candidates(o)
    shift = [weights[..., i] * (points[b] - points["tft"]) for i, b in enumerate(BLENDED)]
    return points["tft"] + sum(shift)


def scores(o: Origins, weights: np.ndarray, metrics: list[int], measured=None) -> dict:
    """{method: [mean MASE at 30m, 1h, 8h]} over the series of `metrics`."""
    points = {"blend": blended(o, weights), **candidates(o)}
    points |= {"last": scoring.last_value(o.values, o.truth.shape[1])}
    truth = o.truth
    if measured is not None:
        mask = np.array([[measured[s] == m for m in dc.METRIC_COLUMNS] for s in o.panel.servers])
        truth = np.where(mask[o.pairs[:, 0]][:, None, :], truth, np.nan)
    out: dict[str, list[float]] = {k: [] for k in points}
    for h in scoring.HORIZONS.values():
        res = scoring.score_horizon(truth, points, o.pairs[:, 0], o.scale, h)
        for k in points:
            out[k].append(float(np.nanmean(res[k]["mase"][metrics])))
    return out


def heldout_sets(args: argparse.Namespace) -> list[tuple[str, pd.DataFrame, object, dict | None]]:
    parts = {f"Azure {n}": p for n, p in azure.heldout_frames().items() if "VMs" in n}
    parts |= {f"NAB {n}": p for n, p in nab.heldout_frames().items()}
    sets = [(title, p.frame, p.cutoff, p.measured) for title, p in parts.items()]
    fleet = pd.read_parquet(args.fleet)
    fleet = fleet[fleet.server_name.isin(args.servers)].reset_index(drop=True)
    return [*sets, ("generated", fleet, pd.Timestamp(args.cutoff), None)]


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", required=True)
    p.add_argument("--corpus", type=Path, required=True, help="the model's training data")
    p.add_argument("--fleet", type=Path, required=True, help="generated held-out fleet")
    p.add_argument("--servers", nargs="+", required=True)
    p.add_argument("--cutoff", required=True)
    p.add_argument("--every", type=int, default=24)
    p.add_argument("--weights", type=Path, help="JSON: read the fitted weights, else write them")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    loaded = load_artifact(args.model)
    forecaster = TFTForecaster(loaded)
    start = pd.Timestamp(loaded.training_info["validation_start"]).tz_convert("UTC")
    if args.weights and args.weights.exists():
        weights = np.array(json.loads(args.weights.read_text()))
    else:
        weights = fit_weights(gather(forecaster, pd.read_parquet(args.corpus), start, args.every))
    if args.weights:
        args.weights.write_text(json.dumps(weights.tolist()))
    for m in (USER, MEMORY):
        picks = ", ".join(
            f"{h} {weights[k - 1, m].round(2).tolist()}" for h, k in scoring.HORIZONS.items()
        )
        say(f"weights (snaive, hour_mean) {dc.METRIC_COLUMNS[m]}: {picks}")
    say("\n| data | metric | blend | tft | snaive | hour_mean | last |\n" + "|---" * 7 + "|")
    for title, frame, cutoff, measured in heldout_sets(args):
        o = gather(forecaster, frame, cutoff, args.every)
        rows = {"measured": list(range(14))} if measured else {"cpu_user_pct": [USER]}
        rows |= {} if measured else {"mem_used_pct": [MEMORY]}
        for name, cols in rows.items():
            row = scores(o, weights, cols, measured)
            cells = " | ".join(" / ".join(f"{v:.3f}" for v in row[k]) for k in row)
            say(f"| {title} | {name} | {cells} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
