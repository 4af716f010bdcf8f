"""Fast training batches: windows gathered straight from the prepared frame's arrays.

pytorch-forecasting's TimeSeriesDataSet builds a batch window by window (__getitem__,
then _collate_fn): about 0.5 s per batch of 64 windows of 288 + 96 steps on a CPU.
WindowDataset builds the same batch with a few vectorised gathers and the inference
input builder (training.inputs.assemble_inputs): the same x keys, dtypes, shapes and
values, and y = (14 decoder target tensors (B, D) in real units, None). A model with
training.recurrence inputs (window summaries, yesterday) gets those too, built from each
window's encoder by the same function as the daemon's; the library cannot build them.

Windows: every (server, encoder start) whose encoder + horizon lies inside one server's
rows (gap-free after prepare_frame) and whose first forecast step is at or after
``min_prediction_idx``, in the library's index order (server_id, then time). Fixed
encoder length only (min_encoder_length == encoder_length); variable lengths need the
library loader.

Stride: an epoch of training uses every ``stride``-th window of each series, at a
random phase drawn each epoch (torch's seeded RNG), so over ``stride`` epochs every
window is seen about once; consecutive windows share 383 of 384 steps. Validation uses
phase 0 of its own stride, the same windows every epoch, in order.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from data_contract import METRIC_COLUMNS
from training.inputs import assemble_inputs, encode_categories


@dataclass(frozen=True)
class WindowArrays:
    """Row arrays of a prepared frame (sorted by server_id, time_idx) and its windows."""

    metrics: np.ndarray  # (N, 14) float32, real units, METRIC_COLUMNS order
    times: np.ndarray  # (N, K) float32 scaled time features, config order
    states: np.ndarray  # (N,) int64 state codes
    servers: np.ndarray  # (N,) int64 server_id codes (0: unknown server)
    groups: np.ndarray  # (N,) int64 the dataset's group codes
    time_idx: np.ndarray  # (N,) int64
    starts: np.ndarray  # (W,) row of each window's first encoder step
    phase: np.ndarray  # (W,) the window's position within its series


def window_starts(
    series: np.ndarray, time_idx: np.ndarray, window: int, enc: int, min_prediction_idx: int
) -> tuple[np.ndarray, np.ndarray]:
    """Rows where a full window starts, and their position within their series."""
    n = len(series)
    heads = np.flatnonzero(np.r_[True, series[1:] != series[:-1]])
    lengths = np.diff(np.r_[heads, n])
    begin, end = np.repeat(heads, lengths), np.repeat(heads + lengths, lengths)
    rows = np.flatnonzero((np.arange(n) + window <= end) & (time_idx + enc >= min_prediction_idx))
    if (time_idx[rows + window - 1] - time_idx[rows] != window - 1).any():
        raise ValueError("series with missing steps: prepare the frame with prepare_frame")
    return rows, rows - begin[rows]


def window_arrays(
    frame: pd.DataFrame,
    config: dict[str, Any],
    group_codes: Mapping[str, int],
    min_prediction_idx: int | None = None,
) -> WindowArrays:
    """The numpy form of ``frame`` (prepare_frame output) and its full windows."""
    if config["min_encoder_length"] != config["encoder_length"]:
        raise ValueError("fast batches need a fixed encoder length (use the library loader)")
    frame = frame.sort_values(["server_id", "time_idx"], kind="stable")
    enc, window = config["encoder_length"], config["encoder_length"] + config["horizon"]
    time_idx = frame["time_idx"].to_numpy(np.int64)
    series = frame["server_id"].to_numpy()
    lowest = int(time_idx.min()) if min_prediction_idx is None else min_prediction_idx
    starts, phase = window_starts(series, time_idx, window, enc, lowest)
    return WindowArrays(
        metrics=frame[list(METRIC_COLUMNS)].to_numpy(np.float32),
        times=frame[config["time_features"]].to_numpy(np.float32),
        states=encode_categories(config, "state", frame["state"]),
        servers=encode_categories(config, "server_id", series),
        groups=frame["server_id"].map(group_codes).to_numpy(np.int64),
        time_idx=time_idx,
        starts=starts,
        phase=phase,
    )


def group_codes(dataset: Any) -> dict[str, int]:
    """A TimeSeriesDataSet's server_id -> group code (its x["groups"]) mapping."""
    encoder = dataset._categorical_encoders["__group_id__server_id"]
    return {str(k): int(v) for k, v in encoder.classes_.items()}


class WindowDataset(Dataset):
    """Indexed by a list of window numbers: returns a whole batch (x, (y, None))."""

    def __init__(self, arrays: WindowArrays, config: dict[str, Any]) -> None:
        self.arrays, self.config = arrays, config
        self.enc, self.dec = config["encoder_length"], config["horizon"]

    def __len__(self) -> int:
        return len(self.arrays.starts)

    def __getitem__(self, windows: Any) -> tuple[dict[str, Any], tuple]:
        a, enc = self.arrays, self.enc
        first = a.starts[np.asarray(windows, dtype=np.int64)]
        rows = first[:, None] + np.arange(enc + self.dec)
        metrics = torch.from_numpy(a.metrics[rows])
        x = assemble_inputs(
            self.config, metrics, a.states[rows], a.servers[first], a.times[rows], enc
        )
        targets = list(metrics.permute(2, 0, 1).contiguous())
        x["encoder_target"] = [t[:, :enc] for t in targets]
        x["decoder_target"] = [t[:, enc:] for t in targets]
        x["decoder_time_idx"] = torch.from_numpy(a.time_idx[rows[:, enc:]])
        x["groups"] = torch.from_numpy(a.groups[first])[:, None]
        return x, (x["decoder_target"], None)


class EpochBatches(Sampler):
    """Batches of window numbers: every ``stride``-th window of each series.

    shuffle: a random phase and order each epoch, full batches only (as the library's
    training loader drops the last partial batch); else phase 0, in order, all batches.
    """

    def __init__(self, phase: np.ndarray, batch_size: int, stride: int = 1, shuffle: bool = True):
        if stride < 1 or batch_size < 1:
            raise ValueError(f"stride and batch size must be >= 1, got {stride}, {batch_size}")
        self.phase, self.batch_size, self.stride, self.shuffle = phase, batch_size, stride, shuffle
        counts = [int((phase % stride == p).sum()) for p in range(stride if shuffle else 1)]
        self.windows = min(counts)
        full, self.drop_last = self.windows // batch_size, shuffle and self.windows > batch_size
        self.batches = full if self.drop_last else -(-self.windows // batch_size)
        if self.batches == 0:
            raise ValueError(f"no windows at stride {stride}: lower the stride")

    def __len__(self) -> int:
        return self.batches

    def __iter__(self) -> Iterator[np.ndarray]:
        offset = int(torch.randint(self.stride, (1,))) if self.shuffle else 0
        chosen = np.flatnonzero(self.phase % self.stride == offset)
        if self.shuffle:
            chosen = chosen[torch.randperm(len(chosen)).numpy()]
        for b in range(self.batches):
            yield chosen[b * self.batch_size : (b + 1) * self.batch_size]


def _as_is(batch: Any) -> Any:
    return batch


def window_loader(
    dataset: WindowDataset, batch_size: int, stride: int, shuffle: bool, num_workers: int = 0
) -> DataLoader:
    """A DataLoader of whole batches from ``dataset`` (one __getitem__ call per batch)."""
    sampler = EpochBatches(dataset.arrays.phase, batch_size, stride, shuffle)
    return DataLoader(
        dataset,
        batch_size=None,
        sampler=sampler,
        collate_fn=_as_is,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
    )


def epoch_windows(loader: DataLoader) -> int:
    """Windows one pass over ``loader`` yields (a window_loader or a library loader)."""
    sampler = loader.sampler
    if isinstance(sampler, EpochBatches):
        return min(sampler.windows, sampler.batches * sampler.batch_size)
    n, batches = len(loader.dataset), loader.batch_sampler
    return n - n % batches.batch_size if batches.drop_last else n
