"""Honest accuracy of a TFT artifact against seasonal naive and last value.

    python bench/backtest.py --model models/latest --data held_out.parquet --cutoff 2025-02-05
    python bench/backtest.py --model models/latest --cloudwatch

Forecast origins lie after --cutoff (every --every steps, each with a full observed
24 h encoder). At 30 min / 1 h / 8 h (steps 6 / 12 / 96) it reports, per metric, the MAE
and MASE of the TFT's p50, of seasonal naive (same time yesterday) and of last value,
and the share of observations inside the TFT's p10-p90 interval. MASE divides each
error by the server's in-sample seasonal-naive MAE before the cutoff, so a MASE of 1.0
is as good as yesterday's curve was in the past. --unseen names the servers the model
never saw in training; they are also scored separately. Output: a markdown table.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script, the repository root is not on the path
    sys.path.insert(0, str(ROOT))

import data_contract as dc  # noqa: E402
from bench import cloudwatch, scoring  # noqa: E402
from training import dataset as tds  # noqa: E402
from training.artifact import LoadedModel, load_artifact  # noqa: E402


def tft_quantiles(loaded: LoadedModel, frame: pd.DataFrame, panel: scoring.Panel, pairs):
    """[origin, h, metric, quantile] TFT forecasts for each (server, t0) pair, computed by
    pytorch-forecasting's own predict on the windows whose first forecast step is t0 + 1."""
    prepared = tds.prepare_frame(frame, loaded.config["step_seconds"])
    offset = int(tds.time_index(pd.Series([panel.start])).iloc[0])
    keys = [(dc.encode_server_name(panel.servers[s]), int(t0) + 1 + offset) for s, t0 in pairs]
    wanted = set(keys)

    def chosen(index: pd.DataFrame) -> pd.Series:
        starts = zip(index["server_id"], index["time_idx_first_prediction"], strict=True)
        return pd.Series([key in wanted for key in starts], index=index.index)

    ds = tds.dataset_from_json(loaded.config["dataset"], prepared).filter(chosen)
    out = loaded.model.predict(ds, mode="quantiles", return_index=True, batch_size=256)
    stacked = np.stack([q.cpu().numpy() for q in out.output], axis=2)  # [n, h, metric, q]
    starts = zip(out.index["server_id"], out.index["time_idx"], strict=True)
    position = {key: i for i, key in enumerate(starts)}
    return stacked[[position[key] for key in keys]]


def score_table(truth, forecasts: dict[str, np.ndarray], quantiles, scale) -> list[dict]:
    """One row per (metric, horizon) with anything scorable."""
    rows = []
    for label, h in scoring.HORIZONS.items():
        results = {name: scoring.score(truth, f, scale, h) for name, f in forecasts.items()}
        cover = scoring.coverage(truth, quantiles[..., 0], quantiles[..., -1], h)
        for m, metric in enumerate(dc.METRIC_COLUMNS):
            if np.isnan(results["tft"][1][m]):
                continue
            row = {"metric": metric, "horizon": label}
            for name, (mae, mase) in results.items():
                row[f"mae_{name}"], row[f"mase_{name}"] = float(mae[m]), float(mase[m])
            rows.append(row | {"p10_p90_coverage": float(cover[m])})
    return rows


def summary(rows: list[dict]) -> list[dict]:
    """Mean MASE over metrics per horizon, and the TFT's gain over seasonal naive."""
    cols = ["mase_tft", "mase_snaive", "mase_last", "p10_p90_coverage"]
    out = pd.DataFrame(rows).groupby("horizon", sort=False)[cols].mean().reset_index()
    out["tft_gain_vs_snaive"] = 1.0 - out["mase_tft"] / out["mase_snaive"]
    return out.to_dict("records")


def markdown(rows: list[dict], title: str) -> str:
    """Rows as a markdown table."""
    if not rows:
        return f"**{title}**: no scorable origins\n"
    cols = list(rows[0])
    lines = [f"**{title}**", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in rows:
        cells = [f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.values()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def mask_unmeasured(truth: np.ndarray, servers: list[str], pairs, measured: dict) -> None:
    """Hide (NaN) the truth of every column a server does not really measure."""
    for m, metric in enumerate(dc.METRIC_COLUMNS):
        keep = np.array([metric in measured.get(servers[s], ()) for s in pairs[:, 0]])
        truth[~keep, :, m] = np.nan


def evaluate(
    loaded: LoadedModel,
    frame: pd.DataFrame,
    first,
    every: int,
    measured: dict | None = None,
    unseen: set[str] | None = None,
) -> str:
    """Markdown report; forecasts from step `first` (int or per server) of the panel."""
    panel = scoring.dense_panel(frame, loaded.config["step_seconds"])
    enc, horizon = loaded.config["encoder_length"], loaded.config["horizon"]
    pairs = scoring.origins(panel, first, every, enc, horizon)
    truth = scoring.actuals(panel, pairs, horizon)
    if measured:
        mask_unmeasured(truth, panel.servers, pairs, measured)
    quantiles = tft_quantiles(loaded, frame, panel, pairs)
    forecasts = {
        "tft": quantiles[..., quantiles.shape[-1] // 2],
        "snaive": scoring.seasonal_naive(panel, pairs, horizon),
        "last": scoring.last_value(panel, pairs, horizon),
    }
    scale = scoring.mase_scale(panel, first)[pairs[:, 0]]
    groups = {"all servers": np.ones(len(pairs), dtype=bool)}
    if unseen:
        new = np.array([panel.servers[s] in unseen for s in pairs[:, 0]])
        groups |= {"servers seen in training": ~new, "servers not seen in training": new}
    parts = [f"{len(pairs)} forecast origins on {len(set(pairs[:, 0]))} servers.\n"]
    for title, mask in groups.items():
        rows = score_table(
            truth[mask], {k: v[mask] for k, v in forecasts.items()}, quantiles[mask], scale[mask]
        )
        parts += [markdown(summary(rows), f"{title}, mean over metrics") if rows else ""]
        parts += [markdown(rows, f"{title}, per metric")]
    return "\n".join(parts)


def _cloudwatch_run(loaded: LoadedModel, args: argparse.Namespace) -> str:
    frame, measured = cloudwatch.load_cloudwatch(args.cloudwatch)
    panel_start = frame["timestamp"].min()
    starts = frame.groupby("server_name")["timestamp"].min().sort_index()
    first = ((starts - panel_start) / pd.Timedelta(minutes=5)).astype(int) + args.history_days * 288
    measured = {server: {column} for server, column in measured.items()}
    return evaluate(loaded, frame, first.to_numpy(), args.every, measured, set(measured))


def _data_run(loaded: LoadedModel, args: argparse.Namespace) -> str:
    frame = pd.read_parquet(args.data)
    dc.require_valid(frame, source=str(args.data))
    cutoff = pd.Timestamp(args.cutoff, tz="UTC")
    first = int((cutoff - frame["timestamp"].min()) / pd.Timedelta(minutes=5))
    trained = set(loaded.training_info.get("servers", []))
    unseen = set(frame["server_name"].unique()) - trained
    return evaluate(loaded, frame, first, args.every, unseen=unseen)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Backtest a TFT artifact against baselines.")
    parser.add_argument("--model", default=str(ROOT / "models" / "latest"))
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=Path, help="contract parquet with held-out time range")
    source.add_argument("--cloudwatch", type=Path, nargs="?", const=cloudwatch.DEFAULT_DIR)
    parser.add_argument("--cutoff", help="with --data: forecasts start after this time (UTC)")
    parser.add_argument("--history-days", type=int, default=5, help="with --cloudwatch")
    parser.add_argument("--every", type=int, default=12, help="steps between origins")
    parser.add_argument("--out", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.data is not None and not args.cutoff:
        parser.error("--data needs --cutoff")
    loaded = load_artifact(args.model)
    report = _data_run(loaded, args) if args.data is not None else _cloudwatch_run(loaded, args)
    report = f"Model: {loaded.name}\n\n{report}"
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report)
    sys.stdout.write(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
