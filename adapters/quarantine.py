"""The quarantine: what an adapter could not deliver, one JSON line each, with the reason.

Two kinds: documents the mapping could not turn into a record ("unmappable", with the
field and problem), and records the daemon rejected ("rejected", with the daemon's
errors). The cursor moves past both, so one bad document cannot block the stream; an
operator reads the file, fixes the source or the mapping, and re-feeds if needed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger(__name__)


class Quarantine:
    """Appends entries to a JSON-lines file (created 0600 on first use); with no path
    (a dry run) it only logs them."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.count = 0

    def add(self, kind: str, entries: Iterable[dict[str, Any]]) -> int:
        """Append entries of one kind; returns how many."""
        at = datetime.now(timezone.utc).isoformat()
        lines = [
            orjson.dumps({"at": at, "kind": kind, **entry}, default=str) + b"\n"
            for entry in entries
        ]
        if not lines:
            return 0
        self.count += len(lines)
        if self.path is None:
            log.warning("%d %s item(s), e.g. %s", len(lines), kind, lines[0].decode()[:500])
            return len(lines)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch(mode=0o600, exist_ok=True)
        with self.path.open("ab") as out:
            out.writelines(lines)
        log.warning("quarantined %d %s item(s) in %s", len(lines), kind, self.path)
        return len(lines)


def rejected_entries(
    errors: list[dict[str, Any]], records: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """One entry per rejected record: the record and the daemon's errors for it."""
    by_index: dict[int, list[dict[str, Any]]] = {}
    for error in errors:
        index = error.get("index")
        if isinstance(index, int) and 0 <= index < len(records):
            by_index.setdefault(index, []).append(error)
    return [{"record": records[i], "errors": errs} for i, errs in sorted(by_index.items())]
