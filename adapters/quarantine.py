"""The quarantine: what an adapter could not deliver, one JSON line each, with the reason.

Three kinds: documents the mapping could not turn into a record ("unmappable", with the
field and problem), records the daemon rejected ("rejected", with the daemon's errors),
and documents dated past the adapter's clock plus TFT_MAX_CLOCK_SKEW_S ("future"). The
cursor moves past all of them, so one bad document cannot block the stream; an operator
reads the file, fixes the source or the mapping, and re-feeds if needed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger(__name__)


class QuarantineWriteError(RuntimeError):
    """The quarantine file cannot be written: the loop backs off and tries again, and the
    documents stay unmarked (they are read again)."""


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
        if self.path is None:
            log.warning("%d %s item(s), e.g. %s", len(lines), kind, lines[0].decode()[:500])
        else:
            self._append(self.path, lines)
            log.warning("quarantined %d %s item(s) in %s", len(lines), kind, self.path)
        self.count += len(lines)
        return len(lines)

    @staticmethod
    def _append(path: Path, lines: list[bytes]) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600, exist_ok=True)
            with path.open("ab") as out:
                out.writelines(lines)
        except OSError as error:
            raise QuarantineWriteError(
                f"cannot write the quarantine file {path}: {error.strerror or error}. Free "
                "disk space, or make the file and its folder writable by this user"
            ) from error


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
