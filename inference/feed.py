"""The /feed answer's parts that are pure: the clock-skew check, the counts, the log.

Every record of a body is either applied, a duplicate (a tick seen before: retries are
safe), stale (see inference/buffers.py) or rejected with {index, field, problem}:
invalid by the contract, dated later than the daemon's clock allows
(TFT_MAX_CLOCK_SKEW_S), or a new server past TFT_MAX_SERVERS.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from inference.buffers import Applied
from inference.ingest import Batch
from inference.predictions import iso

logger = logging.getLogger(__name__)


@dataclass
class FeedStats:
    """Record counts of /feed since start (shown by /health)."""

    received: int = 0
    applied: int = 0
    duplicates: int = 0
    stale: int = 0
    rejected: int = 0
    evicted_servers: int = 0

    def add(self, result: dict[str, Any]) -> None:
        """Count one /feed answer."""
        for name in ("received", "applied", "duplicates", "stale", "rejected"):
            setattr(self, name, getattr(self, name) + result[name])

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))


def within_skew(batch: Batch, now: float, max_skew_s: float) -> tuple[Batch, list[dict[str, Any]]]:
    """The records not dated past now + max_clock_skew_s, and an error for each other."""
    limit = now + max_skew_s
    ahead = batch.seconds > limit
    if not max_skew_s or not ahead.any():
        return batch, []
    problem = (
        "{} is {:.0f} s ahead of the daemon's clock; the limit is {:g} s "
        "(TFT_MAX_CLOCK_SKEW_S; 0 turns the check off)"
    )
    errors = [
        {
            "index": int(i),
            "field": "timestamp",
            "problem": problem.format(iso(s), s - now, max_skew_s),
        }
        for i, s in zip(
            batch.positions()[ahead].tolist(), batch.seconds[ahead].tolist(), strict=True
        )
    ]
    return batch.subset(~ahead), errors


def _index(error: dict[str, Any]) -> int:
    return -1 if error["index"] is None else error["index"]


def feed_result(applied: Applied, errors: list[dict[str, Any]]) -> dict[str, Any]:
    """The counts and errors of a /feed answer: errors are the records' found before
    applying (contract, clock skew); rejected counts records (one may have several)."""
    errors = sorted(errors + applied.rejected, key=_index)
    rejected = len({e["index"] for e in errors})
    received = applied.received - len(applied.rejected) + rejected
    status = "ok" if not rejected else "partial" if rejected < received else "rejected"
    return {
        "status": status,
        "received": received,
        "applied": applied.applied,
        "duplicates": applied.duplicates,
        "stale": applied.stale,
        "rejected": rejected,
        "errors": errors,
    }


def log_feed(result: dict[str, Any]) -> None:
    if result["rejected"]:
        first = result["errors"][0]
        logger.warning(
            "feed: rejected %d of %d records, first: record %s, %s: %s",
            result["rejected"],
            result["received"],
            first["index"],
            first["field"],
            first["problem"],
        )
    if result["stale"]:
        logger.warning(
            "feed: %d of %d records are stale (older than the 24 h window, or behind the "
            "3 h late window and not newer than their step's ticks) and were dropped",
            result["stale"],
            result["received"],
        )
