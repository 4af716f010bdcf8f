"""POSTing a batch to the daemon's /feed, and what its HTTP status codes mean to a sender.

- 2xx, and 422 (nothing applicable): answered; read it with feedclient.answer.read_answer.
- 413: the batch is too large; send it again in halves.
- 401/403 (AUTH_HINT): the key is missing or wrong; keep the records, retry later.
- 5xx, 408 and 429 (RETRYABLE), and no answer at all (httpx.TransportError): keep the
  records and retry after a backoff. Retrying is safe: the daemon counts a repeated
  (server, timestamp) as a duplicate.
A connection that broke under a request (CONNECTION_CLOSED: the daemon closed an idle
keep-alive connection just as it was reused) is not an outage: post_feed sends once more
at once, on a fresh connection.
"""

from __future__ import annotations

import logging

import httpx

FEED_PATH = "/feed"
RETRYABLE = frozenset({408, 429})
# The connection broke under a request (reset, closed before the answer, broken pipe):
# on a reused keep-alive connection, the daemon closed it as it went idle.
CONNECTION_CLOSED = (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError)
AUTH_HINT = {
    401: "the daemon requires an API key: set TFT_API_KEY (python generate_api_key.py)",
    403: "TFT_API_KEY does not match the daemon's key",
}
_HEADERS = {"Content-Type": "application/json"}


def post_feed(
    client: httpx.Client, body: bytes, log: logging.Logger | None = None
) -> httpx.Response:
    """POST a JSON body to /feed on client's base URL; once more at once when the
    connection broke under it (said at info on log, if given). Raises httpx.TransportError
    when the daemon cannot be reached."""
    try:
        return client.post(FEED_PATH, content=body, headers=_HEADERS)
    except CONNECTION_CLOSED as exc:
        if log is not None:
            log.info("Connection to the TFT daemon broke (%s); resending at once", reason(exc))
        return client.post(FEED_PATH, content=body, headers=_HEADERS)


def reason(exc: httpx.TransportError) -> str:
    """'ConnectError: [Errno 111] Connection refused', or the error's type alone."""
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
