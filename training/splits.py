"""Which data a training run sees, and its time split into training and validation.

select_training_data (the trainer's --holdout-servers, --until and --max-servers), in
this order:

1. ``holdout``: K servers are left out of training entirely, drawn with ``seed`` and
   spread over the server profiles (the leading letters of a name, ``ppdb`` of ``ppdb003``):
   one of each profile in turn, largest profiles first. training_info.json lists them,
   so a backtest can score them as servers never seen.
2. ``until``: only rows with timestamp < until are kept (UTC; naive timestamps and a
   naive ``until`` are UTC); later data stays unseen for a backtest.
3. ``max_servers``: of the servers left, the first K by name are kept.

build_splits: the last ``val_fraction`` of the time range (at least one horizon) is the
validation period. Training windows end by the cutoff; validation rows start one
encoder before it, so every validation window forecasts steps after the cutoff.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pytorch_forecasting import TimeSeriesDataSet

from training.dataset import to_utc


@dataclass
class Selection:
    """The rows a run trains and validates on, and the servers it leaves out."""

    frame: pd.DataFrame
    holdout: list[str]  # --holdout-servers: never seen in training
    unused: list[str]  # beyond --max-servers
    until: pd.Timestamp | None


def parse_until(text: str | None) -> pd.Timestamp | None:
    """A UTC timestamp from ISO text (naive: UTC); None stays None."""
    if text is None:
        return None
    stamp = pd.Timestamp(text)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def profile_of(name: str) -> str:
    """The profile part of a server name: its leading letters (``ppdb`` of ``ppdb003``,
    ``cw`` of the real series ``cw-ec2_cpu_utilization_24ae8d``)."""
    letters = re.match(r"[A-Za-z]*", name).group(0)
    return letters or name


def holdout_servers(names: list[str], k: int, seed: int) -> list[str]:
    """K names drawn with ``seed``, one per profile in turn (largest profiles first)."""
    rng = np.random.default_rng(seed)
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(profile_of(name), []).append(name)
    queues = [list(rng.permutation(g)) for _, g in sorted(groups.items(), key=_size_then_name)]
    held: list[str] = []
    while len(held) < k:
        for queue in queues:
            if queue and len(held) < k:
                held.append(str(queue.pop()))
    return sorted(held)


def _size_then_name(item: tuple[str, list[str]]) -> tuple[int, str]:
    return -len(item[1]), item[0]


def select_training_data(
    frame: pd.DataFrame,
    until: str | None = None,
    holdout: int = 0,
    max_servers: int | None = None,
    seed: int = 0,
) -> Selection:
    """Apply --holdout-servers, --until and --max-servers (see the module doc)."""
    names = sorted(frame["server_name"].unique())
    if not 0 <= holdout < len(names):
        raise ValueError(f"--holdout-servers {holdout}: the data has {len(names)} servers")
    if max_servers is not None and max_servers < 1:
        raise ValueError(f"--max-servers must be at least 1, got {max_servers}")
    held = holdout_servers(names, holdout, seed)
    keep = ~frame["server_name"].isin(held)
    stamp = parse_until(until)
    if stamp is not None:
        keep &= (to_utc(frame["timestamp"]) < stamp).to_numpy()
    left = sorted(frame.loc[keep, "server_name"].unique())
    if not left:
        raise ValueError(f"no training rows before {stamp}")
    chosen, unused = left[:max_servers], left[max_servers:] if max_servers else []
    selected = frame[keep & frame["server_name"].isin(chosen)]
    return Selection(selected, held, unused, stamp)


# --- time split ----------------------------------------------------------------------


def split_index(frame: pd.DataFrame, val_fraction: float, horizon: int) -> int:
    """Last time_idx of the training part; validation forecasts start after it."""
    first, last = int(frame["time_idx"].min()), int(frame["time_idx"].max())
    val_steps = max(horizon, round(val_fraction * (last - first + 1)))
    return last - val_steps


def servers_with_windows(frame: pd.DataFrame, window: int, start: int, end: int) -> list[str]:
    """Servers with at least one window of ``window`` steps inside [start, end]."""
    span = frame.groupby("server_id")["time_idx"].agg(["min", "max"])
    lo, hi = span["min"].clip(lower=start), span["max"].clip(upper=end)
    return sorted(span.index[(hi - lo + 1) >= window])


@dataclass
class Splits:
    """Training and validation rows of a prepared frame, and their library datasets."""

    train_part: pd.DataFrame
    val_part: pd.DataFrame
    training: TimeSeriesDataSet
    validation: TimeSeriesDataSet
    cutoff: int  # last time_idx whose value a training window may see


def split_frames(
    frame: pd.DataFrame, params: dict[str, Any], val_fraction: float
) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """(training rows, validation rows, cutoff); servers without a full window are left
    out of the part they cannot fill."""
    cutoff = split_index(frame, val_fraction, params["max_prediction_length"])
    window = params["min_encoder_length"] + params["max_prediction_length"]
    train_ids = servers_with_windows(frame, window, int(frame.time_idx.min()), cutoff)
    if not train_ids:
        raise ValueError(f"no server has {window} steps before the validation cutoff")
    train_part = frame[frame.server_id.isin(train_ids) & (frame.time_idx <= cutoff)]
    val_start = cutoff + 1 - params["max_encoder_length"]
    val_ids = servers_with_windows(frame, window, val_start, int(frame.time_idx.max()))
    if not val_ids:
        raise ValueError(f"no server has {window} steps around the validation period")
    val_part = frame[frame.server_id.isin(val_ids) & (frame.time_idx >= val_start)]
    return train_part, val_part, cutoff


def build_splits(frame: pd.DataFrame, params: dict[str, Any], val_fraction: float) -> Splits:
    """The split of a prepared frame, with TimeSeriesDataSets (they fit the encoders)."""
    train_part, val_part, cutoff = split_frames(frame, params, val_fraction)
    training = TimeSeriesDataSet(train_part, **params)
    validation = TimeSeriesDataSet.from_dataset(
        training, val_part, min_prediction_idx=cutoff + 1, stop_randomization=True
    )
    return Splits(train_part, val_part, training, validation, cutoff)


def build_datasets(
    frame: pd.DataFrame, params: dict[str, Any], val_fraction: float
) -> tuple[TimeSeriesDataSet, TimeSeriesDataSet]:
    """The (training, validation) TimeSeriesDataSets of build_splits."""
    splits = build_splits(frame, params, val_fraction)
    return splits.training, splits.validation
