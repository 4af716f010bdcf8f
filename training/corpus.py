"""The training corpus: a generated fleet plus the training parts of the real series (NAB
AWS CloudWatch, Azure VM CPU).

    python -m training.corpus --fleet build/corpus/server_metrics.parquet \
        --out build/corpus/corpus.parquet [--end 2025-01-24T00:00Z] [--nab-copies 4] \
        [--azure-copies 1 | --no-azure]

Real series are moved in time by whole weeks (hour of day and day of week unchanged) so
that each ends with the fleet's last week: the trainer's time split then gives every
source both training and validation windows. The real parts are training.nab's and
training.azure's training splits only; their held-out series, VMs and tails are never
part of a corpus. Each real source is repeated its own number of times: NAB's training
part is 10 short series (36,081 rows), worth repeating (the shipped model used 4 copies);
Azure's is 140 series of 19.5 days (784,280 rows, three quarters of a 120-server 30-day
fleet), so it is taken once by default.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from data_contract import require_valid
from env_settings import configure_logging
from training import azure, nab

logger = logging.getLogger(__name__)
WEEK = pd.Timedelta(days=7)


def align_to(series: pd.DataFrame, end: pd.Timestamp) -> pd.DataFrame:
    """``series`` moved by whole weeks so that its last row falls in the week before end."""
    last = series["timestamp"].max()
    weeks = (end - last) // WEEK
    return series.assign(timestamp=series["timestamp"] + weeks * WEEK)


def build_corpus(
    fleet: pd.DataFrame,
    real: Sequence[tuple[pd.DataFrame, int]],
    end: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """The fleet and the real series, each aligned to ``end`` (default: the fleet's last
    timestamp; a run with --until wants that time), contract-valid. ``real`` holds
    (frame, copies) per source: copies > 1 repeats each of its series (named ``<name>~2``
    ...), each copy one more week earlier, so that a few real series weigh more in
    training and each copy's validation part differs."""
    end = fleet["timestamp"].max() if end is None else end
    moved = [
        align_to(group, end - k * WEEK).assign(server_name=_copy_name(name, k))
        for frame, copies in real
        for name, group in frame.groupby("server_name", sort=True)
        for k in range(copies)
    ]
    corpus = pd.concat([fleet, *moved], ignore_index=True)
    corpus["timestamp"] = corpus["timestamp"].astype(fleet["timestamp"].dtype)
    require_valid(corpus, "training corpus")
    return corpus


def _copy_name(name: str, k: int) -> str:
    return name if k == 0 else f"{name}~{k + 1}"


def real_sources(args: argparse.Namespace) -> list[tuple[pd.DataFrame, int]]:
    """(training frame, copies) of each real source the arguments ask for."""
    sources = [(nab.training_frame(args.nab_dir), args.nab_copies)]
    if args.azure:
        sources.append((azure.training_frame(args.azure_dir), args.azure_copies))
    for frame, copies in sources:
        servers = frame["server_name"].nunique()
        logger.info("real part: %d rows, %d servers, x%d", len(frame), servers, copies)
    return sources


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m training.corpus", description=__doc__)
    p.add_argument("--fleet", type=Path, required=True, help="a metrics_generator parquet")
    p.add_argument("--nab-dir", type=Path, default=nab.DEFAULT_DIR)
    p.add_argument("--azure-dir", type=Path, default=azure.DEFAULT_DIR)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--end", type=pd.Timestamp, help="align the real series to end here")
    p.add_argument("--nab-copies", "--real-copies", type=int, default=1, metavar="K")
    p.add_argument("--azure", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--azure-copies", type=int, default=1, metavar="K")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    args = parse_args(argv)
    fleet = pd.read_parquet(args.fleet)
    corpus = build_corpus(fleet, real_sources(args), args.end)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    corpus.to_parquet(args.out, index=False)
    logger.info("%d rows, %d servers -> %s", len(corpus), corpus.server_name.nunique(), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
