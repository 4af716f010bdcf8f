"""An adapter's cursor: what it has delivered, kept in a JSON state file.

The cursor is the newest delivered document time plus the ids of the documents delivered
within the overlap window before it. A poll re-reads from (time - overlap) and skips the
ids it holds, so a document that shares a timestamp with delivered ones, or that became
visible late (within the window), is sent once and only once. The file is replaced
atomically (durable.write_atomically: temp file, fsync, rename, fsync of the directory;
mode 0600) after each answered POST.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from durable import PRIVATE, write_atomically

FORMAT = 1


class StateFileError(RuntimeError):
    """The state file cannot be read: says which file and how to recover."""


class StateWriteError(RuntimeError):
    """The state file cannot be written (disk full, permissions): the loop backs off and
    tries again; the cursor in memory stays where it was."""


@dataclass
class Cursor:
    """The newest delivered time (None: nothing yet) and the delivered ids at or after
    time - overlap, with their times (epoch seconds)."""

    time: datetime | None = None
    sent: dict[str, float] = field(default_factory=dict)

    def seen(self, doc_id: str) -> bool:
        return doc_id in self.sent

    def mark(
        self,
        delivered: list[tuple[str, datetime]],
        overlap: timedelta,
        *,
        until: datetime | None = None,
    ) -> None:
        """Record delivered (id, time) pairs, the time moving to the newest but not past
        until (ids dated later are kept until it passes them); forget ids older than the
        window."""
        for doc_id, at in delivered:
            self.sent[doc_id] = at.timestamp()
            if self.time is None or at > self.time:
                self.time = at
        if self.time is not None and until is not None:
            self.time = min(self.time, until)
        if self.time is not None:
            oldest = (self.time - overlap).timestamp()
            self.sent = {k: v for k, v in self.sent.items() if v >= oldest}

    def hold(self, held: list[tuple[str, datetime]]) -> None:
        """Record (id, time) pairs of documents done with but not delivered (quarantined
        ahead of the clock): skipped when read again; the time does not move."""
        for doc_id, at in held:
            self.sent[doc_id] = at.timestamp()

    def start(self, overlap: timedelta) -> datetime | None:
        """Where the next poll reads from: time - overlap (None: no cursor yet)."""
        return None if self.time is None else self.time - overlap


def load(path: Path) -> Cursor:
    """The cursor in path; an empty cursor when the file does not exist."""
    if not path.exists():
        return Cursor()
    try:
        body = json.loads(path.read_text())
        if body.get("format") != FORMAT:
            raise ValueError(f"format {body.get('format')!r}, expected {FORMAT}")
        at = body["time"]
        time = datetime.fromisoformat(at.replace("Z", "+00:00")) if at else None
        return Cursor(time=time, sent={str(k): float(v) for k, v in body["sent"].items()})
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise StateFileError(
            f"cannot read the adapter state file {path}: {error}. Move it aside to start "
            "again from --backfill-hours (the daemon drops what it already holds)"
        ) from error


def save(path: Path, cursor: Cursor) -> None:
    """Write the cursor atomically (0600); StateWriteError naming the file and the fix."""
    try:
        _write(path, cursor)
    except OSError as error:
        raise StateWriteError(
            f"cannot write the adapter state file {path}: {error.strerror or error}. Free "
            "disk space, or make the file and its folder writable by this user"
        ) from error


def _write(path: Path, cursor: Cursor) -> None:
    body: dict[str, Any] = {
        "format": FORMAT,
        "time": cursor.time.astimezone(timezone.utc).isoformat() if cursor.time else None,
        "sent": cursor.sent,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, json.dumps(body, separators=(",", ":")), mode=PRIVATE)
