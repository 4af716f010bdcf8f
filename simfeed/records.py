"""Simulator frames to /feed records: 5-minute aggregation and JSON-ready dicts."""

from __future__ import annotations

from typing import Any

import pandas as pd

import data_contract as dc
from simfeed.timing import STEP, STEP_SECONDS

ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
# The daemon's rule (data_contract.AGGREGATION), so a backfilled step equals the step
# the daemon would build from the same ticks streamed.
GAUGES: tuple[str, ...] = dc.MEAN_COLUMNS
COUNTERS: tuple[str, ...] = dc.MAX_COLUMNS
LAST: tuple[str, ...] = ("state", *dc.LAST_COLUMNS)
DECIMALS = 4  # floats are sent rounded: smaller bodies, no false precision


def aggregate_steps(frame: pd.DataFrame, tick: int) -> pd.DataFrame:
    """One row per server and 5-minute step, timestamped at the step's start.

    What the daemon builds from the streamed ticks (data_contract.AGGREGATION): gauges
    are the mean of the step's ticks, close-wait counts their max, state and uptime_days
    the last tick's.
    Rows come by timestamp, then server. At a 300 s tick the frame is only reordered.
    """
    if tick >= STEP_SECONDS or frame.empty:
        return time_major(frame)
    out = dc.aggregate_rows(frame, [frame["server_name"], frame["timestamp"].dt.floor(STEP)])
    return time_major(out.reset_index()[list(dc.REQUIRED_COLUMNS)])


def time_major(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame's rows by timestamp, then server name (per server order is kept)."""
    ordered = frame.sort_values(["timestamp", "server_name"], kind="stable")
    return ordered.reset_index(drop=True)


def to_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-ready contract records: ISO 8601 UTC timestamps ("...Z"), Python ints and floats."""
    out = frame[list(dc.REQUIRED_COLUMNS)].copy()
    out["timestamp"] = out["timestamp"].dt.strftime(ISO_FORMAT)
    out[list(GAUGES)] = out[list(GAUGES)].round(DECIMALS)
    return out.to_dict("records")
