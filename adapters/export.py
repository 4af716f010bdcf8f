"""--export: a source's mapped records of a time range as a contract parquet file.

The file is what training/tft_trainer.py reads (--data), so an operator can train a
model on their own fleet's history; the trainer aggregates the ticks to 5-minute steps.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

import data_contract as dc
from adapters.base import Mapper, Source

log = logging.getLogger(__name__)
# At the end of the range every join bucket is as complete as it will get: close them all.
CLOSE_ALL = timedelta(days=366)


def export_records(
    *,
    source: Source,
    mapper: Mapper,
    since: datetime,
    until: datetime,
    path: Path,
    batch_size: int,
) -> int:
    """Write the records mapped from the documents of [since, until) to path; how many.
    Unmappable documents are counted in the log, not written."""
    frames: list[pd.DataFrame] = []  # a page's records as a frame: far smaller than dicts
    held: list[Any] = []
    failures = 0
    for page in source.pages(since, until, batch_size):
        docs = held + page
        mapped = mapper([d.body for d in docs], final=False, now=until)
        frames.append(records_frame(mapped.records))
        failures += len(mapped.failures)
        held = docs[mapped.consumed :]
    mapped = mapper([d.body for d in held], final=True, now=until + CLOSE_ALL)
    frames.append(records_frame(mapped.records))
    failures += len(mapped.failures)
    if failures:
        log.warning("%d documents could not be mapped and are not in the export", failures)
    frame = pd.concat(frames, ignore_index=True)
    frame = frame.sort_values(["server_name", "timestamp"], ignore_index=True)
    dc.require_valid(frame, source=f"the export of {since} to {until}")
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    return len(frame)


def records_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """Contract records as a frame of the contract's columns (in their order)."""
    frame = pd.DataFrame.from_records(records, columns=list(dc.REQUIRED_COLUMNS))
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601")
    for column in dc.METRIC_COLUMNS:  # typed even when empty (concat keeps the types)
        frame[column] = frame[column].astype("int64" if column in dc.INT_COLUMNS else "float64")
    return frame
