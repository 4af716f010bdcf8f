"""FeedSender: POST records to the daemon's /feed, in order, through a bounded retry buffer.

Records wait in one FIFO buffer and leave it only once the daemon has answered for them.
- 2xx: answered. The daemon's counts (feedclient.answer) say how many records it applied,
  found duplicate or stale, or rejected; rejected records are logged and never resent.
- other 4xx (e.g. 422, nothing applicable): the batch is answered for; its records count
  as rejected (or as the answer's counts say), are logged and never resent.
- Connection errors, timeouts, 5xx, 408 and 429: kept, and retried oldest first after an
  exponential backoff (backoff_initial doubling up to backoff_max). A connection closed
  under a request (the keep-alive race: the daemon closed an idle connection just as it
  was reused) is resent once at once before that.
- 401/403: the key is missing or wrong; logged as such, kept, retried at backoff_max
  (a daemon restarted with the right key gets everything).
(feedclient.post holds the POST and what each status code means, shared with the adapters.)
- 413: the batch size is halved and the same records are sent again at once.
The buffer holds at most max_records; beyond that the oldest unsent records are dropped,
counted and logged. Retrying a batch is safe: the daemon treats a repeated
(server, timestamp) as the same tick (a duplicate).
"""

from __future__ import annotations

import enum
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import httpx
import orjson

from feedclient.answer import FeedAnswer, read_answer
from feedclient.outcomes import OUTCOMES, Counts
from feedclient.post import AUTH_HINT, RETRYABLE, post_feed, reason
from simfeed.answers import log_answer

logger = logging.getLogger(__name__)

# The sender's counts since start (FeedSender.stats); failures counts consecutive failed
# attempts. forwarded: records the daemon answered for (2xx or 4xx), split by its answer
# into the OUTCOMES. produced = forwarded + dropped + buffered.
SENDER_COUNTS = ("produced", "forwarded", *OUTCOMES, "dropped", "failures")


class Outcome(enum.Enum):
    SENT = "sent"  # 2xx: answered (applied, duplicates, stale or rejected per record)
    REJECTED = "rejected"  # 4xx: answered, nothing applied, never retried
    RESIZED = "resized"  # 413: same records again, smaller batch
    RETRY = "retry"  # kept; retry after the backoff


class FeedSender:
    """Sends buffered records in batches of at most batch_size; see the module docstring."""

    def __init__(
        self,
        client: httpx.Client,
        batch_size: int,
        max_records: int,
        backoff_initial: float = 1.0,
        backoff_max: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client, self.batch_size, self.max_records = client, batch_size, max_records
        self.backoff_initial, self.backoff_max, self.clock = backoff_initial, backoff_max, clock
        self.stats = Counts(SENDER_COUNTS)
        self.quiet = False  # True while streaming: routine answers are logged at debug
        self._buffer: deque[dict[str, Any]] = deque()
        self._next_attempt = 0.0

    def close(self) -> None:
        """Nothing to release (the caller owns the HTTP client); sinks close theirs."""

    @property
    def pending(self) -> int:
        """Records waiting to be sent."""
        return len(self._buffer)

    def retry_in(self) -> float:
        """Seconds until the next attempt is allowed (0 when not backing off)."""
        return max(self._next_attempt - self.clock(), 0.0)

    def retry_now(self) -> None:
        """Allow the next flush to try at once (e.g. a last attempt before exiting)."""
        self._next_attempt = 0.0

    def enqueue(self, records: Iterable[dict[str, Any]]) -> int:
        """Append records; drop the oldest beyond max_records. Returns how many were dropped."""
        before = len(self._buffer)
        self._buffer.extend(records)
        self.stats.produced += len(self._buffer) - before
        excess = len(self._buffer) - self.max_records
        if excess <= 0:
            return 0
        for _ in range(excess):
            self._buffer.popleft()
        self.stats.dropped += excess
        logger.warning(
            "Buffer full (%d records): dropped the %d oldest unsent records (%d dropped so far)",
            self.max_records,
            excess,
            self.stats.dropped,
        )
        return excess

    def flush(self, full_only: bool = False) -> bool:
        """Send what the buffer holds, oldest first; True when it is empty afterwards.

        Returns early while backing off. full_only: send whole batches only.
        """
        while self._buffer and not (full_only and len(self._buffer) < self.batch_size):
            if self.clock() < self._next_attempt:
                return False
            batch = list(itertools.islice(self._buffer, self.batch_size))
            outcome = self._post(batch)
            if outcome is Outcome.RETRY:
                return False
            if outcome is not Outcome.RESIZED:
                for _ in batch:
                    self._buffer.popleft()
        return not self._buffer

    def _post(self, batch: list[dict[str, Any]]) -> Outcome:
        try:  # a connection broken under the POST is resent at once, before the backoff
            response = post_feed(self.client, orjson.dumps(batch), logger)
        except httpx.TransportError as exc:
            return self._retry(reason(exc))
        return self._handle(response, batch)

    def _handle(self, response: httpx.Response, batch: list[dict[str, Any]]) -> Outcome:
        code, n = response.status_code, len(batch)
        if 200 <= code < 300:
            return self._answered(response, batch, "applied")
        if code in AUTH_HINT:
            logger.error("TFT daemon refused the request (HTTP %d): %s", code, AUTH_HINT[code])
            return self._retry(f"HTTP {code}", self.backoff_max)
        if code == 413 and n > 1:
            self.batch_size = max(1, n // 2)
            logger.warning("TFT daemon: batch too large (HTTP 413); batches of %d now", n // 2)
            return Outcome.RESIZED
        if code >= 500 or code in RETRYABLE:
            return self._retry(f"HTTP {code}")
        return self._answered(response, batch, "rejected")

    def _answered(
        self, response: httpx.Response, batch: list[dict[str, Any]], default: str
    ) -> Outcome:
        """The daemon answered for the batch: count and log its verdict; never resent."""
        if self.stats.failures:
            logger.info(
                "TFT daemon reachable again after %d failed attempt(s); %d records buffered",
                self.stats.failures,
                len(self._buffer),
            )
        self.stats.failures, self._next_attempt = 0, 0.0
        answer = read_answer(response, len(batch), default)
        self.count(answer, len(batch))
        log_answer(answer, batch, response, self.quiet)
        return Outcome.SENT if response.status_code < 300 else Outcome.REJECTED

    def count(self, answer: FeedAnswer, n: int) -> None:
        """Count a batch of n records the daemon (or the database) answered for."""
        self.stats.forwarded += n
        self.stats.add(answer)

    def _retry(self, reason: str, delay: float | None = None) -> Outcome:
        self.stats.failures += 1
        if delay is None:
            delay = self.backoff_initial * 2 ** min(self.stats.failures - 1, 30)
        delay = min(delay, self.backoff_max)
        self._next_attempt = self.clock() + delay
        logger.warning(
            "TFT daemon unavailable (%s); %d records buffered, retrying in %.1f s",
            reason,
            len(self._buffer),
            delay,
        )
        return Outcome.RETRY
