"""Real AWS CloudWatch series from NAB: the contract importer and the one train/held-out split.

Each usable CSV (one metric of one instance) becomes one server. Its measured metric goes
into its contract column; every other column holds a neutral constant, so only the
measured column is scored. CPUUtilization -> cpu_user_pct (cpu_idle_pct = 100 - value,
the rest of the CPU split 0); NetworkIn bytes per 5-minute period -> net_in_mb_s
(bytes / 300 / 1e6). Disk write bytes, ELB request counts, latencies and the unlabelled
grok series have no contract column and are skipped. Timestamps are floored to the
5-minute grid; duplicates keep the last value.

The split (seeded, deterministic, the same for the trainer and the backtest):

* whole held-out series: round(HOLDOUT_FRACTION x usable series) drawn with
  numpy.random.default_rng(seed) among the series of at least MIN_WHOLE_DAYS days (the
  backtest needs HISTORY_DAYS of history before it scores one);
* every other series: its first 1 - TAIL_FRACTION of steps trains, the later TAIL_FRACTION
  is held out (forecasts start there; the encoder may reach back into the trained part).

    training_frame()   -> contract frame of the training parts only
    heldout_frames()   -> {"held-out series": HeldOut, "held-out tails": HeldOut}
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

import data_contract as dc

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "nab_aws_cloudwatch"
SEED = 0
HOLDOUT_FRACTION = 0.3  # share of usable series held out whole
TAIL_FRACTION = 0.3  # later share of each other series held out
HISTORY_DAYS = 5  # a whole held-out series: history (MASE scale) before scoring starts
MIN_WHOLE_DAYS = 6  # a series shorter than this is never held out whole
NEUTRAL = {
    "cpu_user_pct": 10.0,
    "cpu_sys_pct": 0.0,
    "cpu_iowait_pct": 0.0,
    "java_cpu_pct": 0.0,
    "mem_used_pct": 40.0,
    "swap_used_pct": 0.0,
    "disk_usage_pct": 50.0,
    "net_in_mb_s": 1.0,
    "net_out_mb_s": 1.0,
    "back_close_wait": 0,
    "front_close_wait": 0,
    "load_average": 1.0,
    "uptime_days": 30,
}


@dataclass(frozen=True)
class HeldOut:
    """A held-out part: whole contract frames (history included), the measured column of
    each server, and the first scored timestamp of each (MASE scale from before it)."""

    frame: pd.DataFrame
    measured: dict[str, str]
    cutoff: dict[str, pd.Timestamp]


@dataclass(frozen=True)
class Split:
    whole: tuple[str, ...]  # servers held out whole
    tail_start: dict[str, pd.Timestamp]  # other servers: first held-out timestamp


def measured_column(file_name: str) -> str | None:
    """The contract column a CloudWatch file measures, or None if the contract has none."""
    name = file_name.lower()
    if "cpu_utilization" in name:
        return "cpu_user_pct"
    if "network_in" in name or "networkin" in name:
        return "net_in_mb_s"
    return None


def _read_series(path: Path) -> pd.Series:
    raw = pd.read_csv(path, parse_dates=["timestamp"])
    stamps = raw["timestamp"].dt.floor("5min").dt.tz_localize("UTC")
    series = pd.Series(raw["value"].to_numpy(dtype=np.float64), index=stamps)
    return series[~series.index.duplicated(keep="last")].sort_index()


def series_to_contract(server: str, column: str, series: pd.Series) -> pd.DataFrame:
    """One server's contract frame: the measured column from series, neutral constants elsewhere."""
    frame = pd.DataFrame({"timestamp": series.index, "server_name": server})
    for col, value in NEUTRAL.items():
        frame[col] = value
    values = series.to_numpy()
    if column == "cpu_user_pct":
        frame["cpu_user_pct"] = np.clip(values, 0.0, 100.0)
    else:
        frame[column] = np.maximum(values, 0.0) / 300.0 / 1e6
    frame["cpu_idle_pct"] = 100.0 - frame["cpu_user_pct"]
    feats = dc.time_features(frame["timestamp"])
    cpu = 100.0 - frame["cpu_idle_pct"]
    states = dc.determine_state(
        cpu, frame["mem_used_pct"], feats["hour"], feats["is_business_hours"]
    )
    frame["state"] = states
    return frame[list(dc.REQUIRED_COLUMNS)]


def load_series(directory: Path = DEFAULT_DIR) -> dict[str, tuple[str, pd.DataFrame]]:
    """{server: (measured column, contract frame)} of every usable CSV, sorted by server."""
    out = {}
    for path in sorted(directory.rglob("*.csv")):
        column = measured_column(path.name)
        if column is not None:
            server = f"cw-{path.stem}"
            out[server] = (column, series_to_contract(server, column, _read_series(path)))
    if not out:
        raise FileNotFoundError(f"no CloudWatch CPU or NetworkIn CSV files under {directory}")
    return dict(sorted(out.items()))


def _concat(frames: list[pd.DataFrame], source: str) -> pd.DataFrame:
    frame = pd.concat(frames, ignore_index=True)
    dc.require_valid(frame, source=source)
    return frame


def load_cloudwatch(directory: Path = DEFAULT_DIR) -> tuple[pd.DataFrame, dict[str, str]]:
    """All usable series as one contract frame, and {server: measured column}."""
    series = load_series(directory)
    frame = _concat([f for _, f in series.values()], str(directory))
    return frame, {server: column for server, (column, _) in series.items()}


def make_split(frames: dict[str, pd.DataFrame], seed: int = SEED) -> Split:
    """The seeded split of these series (see the module doc); depends only on the server
    names, their lengths and the seed."""
    names = sorted(frames)
    span = {s: frames[s]["timestamp"].max() - frames[s]["timestamp"].min() for s in names}
    eligible = [s for s in names if span[s] >= pd.Timedelta(days=MIN_WHOLE_DAYS)]
    count = min(int(round(HOLDOUT_FRACTION * len(names))), len(eligible))
    order = np.random.default_rng(seed).permutation(len(eligible))
    whole = tuple(sorted(eligible[i] for i in order[:count]))
    tails = {}
    for s in names:
        if s not in whole:
            stamps = frames[s]["timestamp"].sort_values().reset_index(drop=True)
            tails[s] = stamps.iloc[int(np.floor((1.0 - TAIL_FRACTION) * len(stamps)))]
    return Split(whole, tails)


def _split_of(directory: Path, seed: int) -> tuple[dict[str, tuple[str, pd.DataFrame]], Split]:
    series = load_series(directory)
    return series, make_split({s: f for s, (_, f) in series.items()}, seed)


def training_frame(directory: Path = DEFAULT_DIR, seed: int = SEED) -> pd.DataFrame:
    """Contract-valid frame of the training parts: the early steps of the series not held
    out whole (only the measured column of each server is real data)."""
    series, split = _split_of(directory, seed)
    parts = [
        frame[frame["timestamp"] < split.tail_start[s]]
        for s, (_, frame) in series.items()
        if s in split.tail_start
    ]
    return _concat(parts, f"{directory} (training part)")


def training_measured(directory: Path = DEFAULT_DIR, seed: int = SEED) -> dict[str, str]:
    """{server: measured column} of the servers in training_frame()."""
    series, split = _split_of(directory, seed)
    return {s: series[s][0] for s in split.tail_start}


def heldout_frames(directory: Path = DEFAULT_DIR, seed: int = SEED) -> dict[str, HeldOut]:
    """The evaluation parts: whole held-out series (scored after their first HISTORY_DAYS)
    and the held-out tails of the others (scored from the tail start)."""
    series, split = _split_of(directory, seed)
    history = pd.Timedelta(days=HISTORY_DAYS)
    cutoffs = {
        "held-out series": {s: series[s][1]["timestamp"].min() + history for s in split.whole},
        "held-out tails": split.tail_start,
    }
    out = {}
    for name, cutoff in cutoffs.items():
        if cutoff:
            frame = _concat([series[s][1] for s in cutoff], f"{directory} ({name})")
            out[name] = HeldOut(frame, {s: series[s][0] for s in cutoff}, dict(cutoff))
    return out
