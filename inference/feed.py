"""The /feed answer's parts that are pure: the clock-skew check, the counts, the log.

Every record of a body is either applied, a duplicate (a tick seen before: retries are
safe), stale (see inference/buffers.py) or rejected with {index, field, problem}:
invalid by the contract, dated later than the daemon's clock allows
(TFT_MAX_CLOCK_SKEW_S), or a new server past TFT_MAX_SERVERS. The answer lists the first
errors and counts them all (inference/problems.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from inference.buffers import Applied
from inference.ingest import Batch
from inference.predictions import iso
from inference.problems import Problems, combine

COUNTS = ("received", "applied", "duplicates", "stale", "rejected")

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
        for name in COUNTS:
            setattr(self, name, getattr(self, name) + result[name])

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))


def within_skew(batch: Batch, now: float, max_skew_s: float) -> tuple[Batch, Problems]:
    """The records not dated past now + max_skew_s, and the problems of the others."""
    problems = Problems()
    ahead = batch.seconds > now + max_skew_s
    if not max_skew_s or not ahead.any():
        return batch, problems
    problem = (
        f"more than {max_skew_s:g} s ahead of the daemon's clock: the limit is "
        "TFT_MAX_CLOCK_SKEW_S, 0 turns the check off"
    )
    positions, seconds = batch.positions()[ahead].tolist(), batch.seconds[ahead].tolist()
    for index, second in zip(positions, seconds, strict=True):
        got = f" (got {iso(second)}, {second - now:.0f} s ahead)" if problems.listing else ""
        problems.add(index, [("timestamp", problem, got)])
    return batch.subset(~ahead), problems


def feed_result(applied: Applied, found: list[Problems]) -> dict[str, Any]:
    """The counts and errors of a /feed answer: found are the problems met before applying
    (contract, clock skew); rejected counts records (one may have several errors)."""
    fleet = Problems()
    fleet.add_errors(applied.rejected)
    problems = combine([*found, fleet])
    rejected = problems.rejected
    received = applied.received - len(applied.rejected) + rejected
    status = "ok" if not rejected else "partial" if rejected < received else "rejected"
    return {
        "status": status,
        "received": received,
        "applied": applied.applied,
        "duplicates": applied.duplicates,
        "stale": applied.stale,
        "rejected": rejected,
        "errors": problems.errors,
        "error_counts": problems.counted(),
    }


def unusable_body(errors: list[dict[str, Any]]) -> dict[str, Any]:
    """The answer to a body that is not a JSON array (422): every count 0."""
    problems = Problems()
    problems.add_errors(errors)
    return {
        "status": "rejected",
        **dict.fromkeys(COUNTS, 0),
        "errors": problems.errors,
        "error_counts": problems.counted(),
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
            "feed: %d of %d records are stale (older than the 27 h window, or behind the "
            "3 h late window and not newer than their step's ticks) and were dropped",
            result["stale"],
            result["received"],
        )
