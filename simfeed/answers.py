"""The daemon's answers to a /feed batch: what became of each record, and what to log.

The daemon applies every valid record of a batch. It answers 200 with counts
{"status": "ok" | "partial", "received", "applied", "duplicates", "stale", "rejected",
"errors": [{"index", "field", "problem"}, ...], "warmup_progress", ...}, or 422 with the
same counts (status "rejected", applied 0) when nothing could be applied. An older daemon
answers 200 without counts (then the whole batch counts as applied) or 422 with the
errors under "detail" (then the whole batch counts as rejected). Rejected records are
never resent: resending the same bad data cannot succeed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import httpx

logger = logging.getLogger(__name__)

COUNTS: tuple[str, ...] = ("applied", "duplicates", "stale", "rejected")
SHOWN_ERRORS = 3  # errors quoted in the warning; the daemon's answer has them all
SKEW_HINT = (
    "; timestamps further ahead of the daemon's clock than TFT_MAX_CLOCK_SKEW_S "
    "(default 300 s) are refused: with --speed > 1 start the daemon with "
    "TFT_MAX_CLOCK_SKEW_S=0"
)


@dataclass(frozen=True)
class FeedAnswer:
    """One answered batch: its records by outcome (COUNTS), the errors and the warmup."""

    applied: int = 0
    duplicates: int = 0
    stale: int = 0
    rejected: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    warmup: float | None = None

    def counts(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in COUNTS}


def read_answer(response: httpx.Response, n: int, default: str) -> FeedAnswer:
    """The answer to a batch of n records. Records the counts leave out count as
    `default`: all n without counts (an older daemon, or a 4xx that is not a /feed
    answer), all n of a 422 for an unusable body (every count 0)."""
    body = _json(response)
    errors, warmup = _errors(body), body.get("warmup_progress")
    warmup = warmup if isinstance(warmup, int | float) else None
    counts = {name: _count(body.get(name)) for name in COUNTS}
    counts[default] += max(n - sum(counts.values()), 0)
    return FeedAnswer(**counts, errors=errors, warmup=warmup)


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _count(value: Any) -> int:
    return value if isinstance(value, int) and value >= 0 else 0


def _errors(body: dict[str, Any]) -> list[dict[str, Any]]:
    """{index, field, problem} items: "errors", or an older daemon's 422 "detail"."""
    errors = body.get("errors", body.get("detail"))
    if not isinstance(errors, list):
        return []
    return [e for e in errors if isinstance(e, dict)]


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
    if answer.warmup is not None and answer.warmup < 100:
        return f" (warmup {answer.warmup:.1f}%)"
    return ""


def _detail(answer: FeedAnswer, n: int) -> str:
    """': 8 applied, 2 duplicates' unless every record was applied."""
    parts = [f"{v} {k}" for k, v in answer.counts().items() if v]
    return "" if answer.applied == n or not parts else ": " + ", ".join(parts)
