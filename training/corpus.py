"""The training corpus: a generated fleet plus the training part of the real NAB series.

    python -m training.corpus --fleet build/corpus/server_metrics.parquet \
        --out build/corpus/corpus.parquet [--end 2025-01-24T00:00Z]

Real series are few and short, so they are mixed in beside the generated fleet. They are
moved in time by whole weeks (hour of day and day of week unchanged) so that each ends
with the fleet's last week: the trainer's time split then gives every source both
training and validation windows. The NAB part is training.nab's training split only;
its held-out series and tails are never part of a corpus.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pandas as pd

from data_contract import require_valid
from training import nab

logger = logging.getLogger(__name__)
WEEK = pd.Timedelta(days=7)


def align_to(series: pd.DataFrame, end: pd.Timestamp) -> pd.DataFrame:
    """``series`` moved by whole weeks so that its last row falls in the week before end."""
    last = series["timestamp"].max()
    weeks = (end - last) // WEEK
    return series.assign(timestamp=series["timestamp"] + weeks * WEEK)


def build_corpus(
    fleet: pd.DataFrame, real: pd.DataFrame, end: pd.Timestamp | None = None, copies: int = 1
) -> pd.DataFrame:
    """The fleet and the real series, each aligned to ``end`` (default: the fleet's last
    timestamp; a run with --until wants that time), contract-valid. ``copies`` > 1 repeats
    each real series (named ``<name>~2`` ...), each copy one more week earlier, so that the
    few real series weigh more in training and each copy's validation part differs."""
    end = fleet["timestamp"].max() if end is None else end
    moved = [
        align_to(group, end - k * WEEK).assign(server_name=_copy_name(name, k))
        for name, group in real.groupby("server_name", sort=True)
        for k in range(copies)
    ]
    corpus = pd.concat([fleet, *moved], ignore_index=True)
    corpus["timestamp"] = corpus["timestamp"].astype(fleet["timestamp"].dtype)
    require_valid(corpus, "training corpus")
    return corpus


def _copy_name(name: str, k: int) -> str:
    return name if k == 0 else f"{name}~{k + 1}"


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    p = argparse.ArgumentParser(prog="python -m training.corpus", description=__doc__)
    p.add_argument("--fleet", type=Path, required=True, help="a metrics_generator parquet")
    p.add_argument("--nab-dir", type=Path, default=nab.DEFAULT_DIR)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--end", type=pd.Timestamp, help="align the real series to end here")
    p.add_argument("--real-copies", type=int, default=1, help="repeat each real series K times")
    args = p.parse_args(argv)
    fleet, real = pd.read_parquet(args.fleet), nab.training_frame(args.nab_dir)
    corpus = build_corpus(fleet, real, args.end, args.real_copies)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    corpus.to_parquet(args.out, index=False)
    logger.info("%d rows, %d servers -> %s", len(corpus), corpus.server_name.nunique(), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
