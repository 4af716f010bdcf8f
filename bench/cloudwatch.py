"""Import the NAB AWS CloudWatch series (one metric of one instance per CSV) into the contract.

Each usable CSV becomes one server. Its measured metric goes into its contract column;
every other column holds a neutral constant, so only the measured column is scored.
CPUUtilization -> cpu_user_pct (cpu_idle_pct = 100 - value, the rest of the CPU split 0);
NetworkIn bytes per 5-minute period -> net_in_mb_s (bytes / 300 / 1e6). Disk write bytes,
ELB request counts, latencies and the unlabelled grok series have no contract column and
are skipped. Timestamps are floored to the 5-minute grid; duplicates keep the last value.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

import data_contract as dc

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "nab_aws_cloudwatch"
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


def load_cloudwatch(directory: Path = DEFAULT_DIR) -> tuple[pd.DataFrame, dict[str, str]]:
    """All usable series as one contract frame, and {server: measured column}."""
    frames, measured = [], {}
    for path in sorted(directory.rglob("*.csv")):
        column = measured_column(path.name)
        if column is None:
            continue
        server = f"cw-{path.stem}"
        frames.append(series_to_contract(server, column, _read_series(path)))
        measured[server] = column
    if not frames:
        raise FileNotFoundError(f"no CloudWatch CPU or NetworkIn CSV files under {directory}")
    frame = pd.concat(frames, ignore_index=True)
    dc.require_valid(frame, source=str(directory))
    return frame, measured
