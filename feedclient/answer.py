"""FeedAnswer: the daemon's answer to a /feed body, built by the daemon, read by clients.

The daemon applies every valid record of a body and answers 200 with
{"status": "ok" | "partial", "received", "applied", "duplicates", "stale", "rejected",
"errors": [{"index", "field", "problem"}, ...] (the first 100),
"error_counts": [{"field", "problem", "count"}, ...], "new_servers", "servers",
"warmup_progress"}, or 422 with the same counts (status "rejected", applied 0) when
nothing could be applied; a body that is not a JSON array is answered 422 with the counts
and errors only. An older daemon answers 200 without counts (then the whole batch counts
as applied) or 422 with the errors under "detail" (then the whole batch counts as
rejected): read_answer reads those too. Rejected records are never resent: resending the
same bad data cannot succeed.
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict

from feedclient.outcomes import OUTCOMES


class FeedAnswer(BaseModel):
    """One answered batch: received = applied + duplicates + stale + rejected (OUTCOMES).
    new_servers, servers and warmup_progress (percent) are None where the daemon left
    them out (a body it could not read). The daemon sends what it set (exclude_unset)."""

    model_config = ConfigDict(frozen=True)

    status: str = "ok"
    received: int = 0
    applied: int = 0
    duplicates: int = 0
    stale: int = 0
    rejected: int = 0
    errors: list[dict[str, Any]] = []
    error_counts: list[dict[str, Any]] = []
    new_servers: int | None = None
    servers: int | None = None
    warmup_progress: float | None = None

    @staticmethod
    def status_for(received: int, rejected: int) -> str:
        """ok (nothing rejected), partial (some) or rejected (all: answered 422)."""
        return "ok" if not rejected else "partial" if rejected < received else "rejected"

    def counts(self) -> dict[str, int]:
        """The records by outcome (OUTCOMES)."""
        return {name: getattr(self, name) for name in OUTCOMES}

    def json_bytes(self) -> bytes:
        """The answer as the daemon sends it: the fields it set, in order."""
        return self.__pydantic_serializer__.to_json(self, exclude_unset=True)


def read_answer(response: httpx.Response, n: int, default: str) -> FeedAnswer:
    """The answer to a batch of n records. Records the counts leave out count as
    `default` (an outcome): all n without counts (an older daemon, or a 4xx that is not a
    /feed answer), all n of a 422 for an unusable body (every count 0). Values of the
    wrong type are left out, never an error."""
    body = _json(response)
    counts = {name: _count(body.get(name)) for name in OUTCOMES}
    counts[default] += max(n - sum(counts.values()), 0)
    received = sum(counts.values())
    warmup = body.get("warmup_progress")
    return FeedAnswer(
        status=FeedAnswer.status_for(received, counts["rejected"]),
        received=received,
        **counts,
        errors=_errors(body),
        warmup_progress=warmup if isinstance(warmup, int | float) else None,
    )


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _count(value: Any) -> int:
    return int(value) if isinstance(value, int) and value >= 0 else 0


def _errors(body: dict[str, Any]) -> list[dict[str, Any]]:
    """{index, field, problem} items: "errors", or an older daemon's 422 "detail"."""
    errors = body.get("errors", body.get("detail"))
    if not isinstance(errors, list):
        return []
    return [e for e in errors if isinstance(e, dict)]
