"""POST contract records to the daemon's /feed and read its verdict.

The daemon applies every valid record of a batch and answers with counts and the rejected
records' errors (feedclient: the POST and the answer, shared with the generator). A batch
that is not answered (connection refused, timeout, 5xx, 408/429) raises
DaemonUnavailable, and 401/403 raise DaemonRefused: the caller keeps its cursor and
tries again later.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
import orjson

from feedclient.answer import FeedAnswer, read_answer
from feedclient.post import AUTH_HINT, RETRYABLE, post_feed, reason

log = logging.getLogger(__name__)
KEEPALIVE_S = 2.0  # below the daemon's TFT_KEEPALIVE_S (15 s): we close idle ones first


class DaemonUnavailable(RuntimeError):
    """The daemon did not answer for the batch; nothing was delivered for sure."""


class DaemonRefused(RuntimeError):
    """401/403: the API key is missing or wrong."""


def new_client(url: str, api_key: str | None, timeout_s: float) -> httpx.Client:
    """An HTTP client for the daemon at url, sending the key as X-API-Key."""
    headers = {"X-API-Key": api_key} if api_key else {}
    limits = httpx.Limits(max_keepalive_connections=2, keepalive_expiry=KEEPALIVE_S)
    return httpx.Client(base_url=url, headers=headers, timeout=timeout_s, limits=limits)


class Forwarder:
    """Sends batches to /feed; splits a batch the daemon finds too large (413)."""

    def __init__(self, *, client: httpx.Client) -> None:
        self.client = client

    def send(self, records: list[dict[str, Any]]) -> list[tuple[FeedAnswer, list[dict]]]:
        """The daemon's answers, each with the records it answered for (one answer unless
        the batch had to be split). Raises DaemonUnavailable or DaemonRefused."""
        if not records:
            return []
        response = self._post(orjson.dumps(records))
        code = response.status_code
        if code == 413 and len(records) > 1:
            half = len(records) // 2
            log.warning("/feed: batch of %d too large (413); sending halves", len(records))
            return self.send(records[:half]) + self.send(records[half:])
        if code in AUTH_HINT:
            raise DaemonRefused(f"the daemon refused the key (HTTP {code}): {AUTH_HINT[code]}")
        if code >= 500 or code in RETRYABLE:
            raise DaemonUnavailable(f"the daemon answered HTTP {code}: {response.text[:200]}")
        if code not in (200, 422):
            raise DaemonUnavailable(
                f"unexpected HTTP {code} from {response.url}: is tft_daemon.url the inference "
                f"daemon? {response.text[:200]}"
            )
        default = "applied" if code == 200 else "rejected"
        return [(read_answer(response, len(records), default), records)]

    def _post(self, body: bytes) -> httpx.Response:
        try:
            return post_feed(self.client, body)  # resent once on a keep-alive race
        except httpx.TransportError as error:
            raise DaemonUnavailable(
                f"cannot reach the daemon at {self.client.base_url} ({reason(error)})"
            ) from error
