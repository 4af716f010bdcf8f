"""The /feed answer's parts that are pure: the clock-skew check, the answer, the log.

Every record of a body is either applied, a duplicate (a tick seen before: retries are
safe), stale (see inference/buffers.py) or rejected with {index, field, problem}:
invalid by the contract, dated later than the daemon's clock allows
(TFT_MAX_CLOCK_SKEW_S), or a new server past TFT_MAX_SERVERS (feedclient.outcomes).
The answer (feedclient.answer.FeedAnswer, the model the senders read) lists the first
errors and counts them all (contract_parse.Problems).
"""

from __future__ import annotations

import logging
from typing import Any

from contract_parse import Batch, Problems, combine
from feedclient.answer import FeedAnswer
from feedclient.outcomes import OUTCOMES, Counts
from inference.buffers import Applied
from inference.predictions import iso

# The record counts of /feed since start (InferenceService.feed_stats, shown by /health).
FEED_COUNTS = ("received", *OUTCOMES, "evicted_servers")

logger = logging.getLogger(__name__)


def feed_counts() -> Counts:
    return Counts(FEED_COUNTS)


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


def feed_answer(
    applied: Applied, found: list[Problems], servers: int, warmup_progress: float
) -> FeedAnswer:
    """The /feed answer: found are the problems met before applying (contract, clock
    skew); rejected counts records (one may have several errors); servers and
    warmup_progress are the fleet's after applying."""
    fleet = Problems()
    fleet.add_errors(applied.rejected)
    problems = combine([*found, fleet])
    rejected = problems.rejected
    received = applied.received - len(applied.rejected) + rejected
    return FeedAnswer(
        status=FeedAnswer.status_for(received, rejected),
        received=received,
        applied=applied.applied,
        duplicates=applied.duplicates,
        stale=applied.stale,
        rejected=rejected,
        errors=problems.errors,
        error_counts=problems.counted(),
        new_servers=applied.new_servers,
        servers=servers,
        warmup_progress=warmup_progress,
    )


def unusable_body(errors: list[dict[str, Any]]) -> FeedAnswer:
    """The answer to a body that is not a JSON array (422): every count 0, no fleet."""
    problems = Problems()
    problems.add_errors(errors)
    return FeedAnswer(
        status="rejected",
        received=0,
        **dict.fromkeys(OUTCOMES, 0),
        errors=problems.errors,
        error_counts=problems.counted(),
    )


def log_feed(answer: FeedAnswer) -> None:
    if answer.rejected:
        first = answer.errors[0]
        logger.warning(
            "feed: rejected %d of %d records, first: record %s, %s: %s",
            answer.rejected,
            answer.received,
            first["index"],
            first["field"],
            first["problem"],
        )
    if answer.stale:
        logger.warning(
            "feed: %d of %d records are stale (older than the 27 h window, or behind the "
            "3 h late window and not newer than their step's ticks) and were dropped",
            answer.stale,
            answer.received,
        )
