"""What the generator logs of the daemon's answers to its /feed batches.

The answer itself (FeedAnswer: counts per outcome, the rejected records' errors, the
warmup) is feedclient.answer's, read the same way by the adapters. Rejected records are
logged with their server and timestamp, and never resent: resending the same bad data
cannot succeed.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

from feedclient.answer import FeedAnswer

logger = logging.getLogger(__name__)

SHOWN_ERRORS = 3  # errors quoted in the warning; the daemon's answer has them all
SKEW_HINT = (
    "; timestamps further ahead of the daemon's clock than TFT_MAX_CLOCK_SKEW_S "
    "(default 300 s) are refused: with --speed > 1 start the daemon with "
    "TFT_MAX_CLOCK_SKEW_S=0"
)


def describe_errors(errors: list[dict[str, Any]], batch: list[dict[str, Any]]) -> str:
    """The first SHOWN_ERRORS errors, each naming the record's server and timestamp, and
    the clock-skew hint when a timestamp was refused."""
    shown = [_describe(e, batch) for e in errors[:SHOWN_ERRORS]]
    more = len(errors) - len(shown)
    text = "; ".join(shown) + (f"; and {more} more" if more > 0 else "")
    if any(e.get("field") == "timestamp" for e in errors):
        text += SKEW_HINT
    return text


def _describe(error: dict[str, Any], batch: list[dict[str, Any]]) -> str:
    index = error.get("index")
    where = f"record {index}" if index is not None else "the batch"
    record = batch[index] if isinstance(index, int) and 0 <= index < len(batch) else {}
    if "server_name" in record:
        where += f" ({record['server_name']} at {record.get('timestamp')})"
    return f"{where}: {error.get('field')}: {error.get('problem')}"


def log_answer(
    answer: FeedAnswer,
    batch: list[dict[str, Any]],
    response: httpx.Response,
    quiet: bool = False,
) -> None:
    """Info for what was applied (debug when quiet and all of it was applied: the
    streaming status line sums it up), warnings for rejected and stale records."""
    n, code = len(batch), response.status_code
    if answer.rejected:
        why = describe_errors(answer.errors, batch) if answer.errors else response.text[:500]
        logger.warning(
            "TFT daemon rejected %d of %d records (HTTP %d), not resent: %s",
            answer.rejected,
            n,
            code,
            why,
        )
    if answer.stale:
        logger.warning(
            "TFT daemon ignored %d stale records (too far behind their server's newest tick)",
            answer.stale,
        )
    if code < 300:
        routine = quiet and answer.applied == n and not _warmup(answer)
        logger.log(
            logging.DEBUG if routine else logging.INFO,
            "Forwarded %d records to TFT daemon%s%s",
            n,
            _warmup(answer),
            _detail(answer, n),
        )


def _warmup(answer: FeedAnswer) -> str:
    """' (warmup 65.2%)' while the daemon reports warmup below 100, else ''."""
    warmup = answer.warmup_progress
    if warmup is not None and warmup < 100:
        return f" (warmup {warmup:.1f}%)"
    return ""


def _detail(answer: FeedAnswer, n: int) -> str:
    """': 8 applied, 2 duplicates' unless every record was applied."""
    parts = [f"{v} {k}" for k, v in answer.counts().items() if v]
    return "" if answer.applied == n or not parts else ": " + ", ".join(parts)
