"""The loop every adapter shares: poll the source, map, forward, quarantine, keep the cursor.

A source implements only `pages()` (its documents from a time on, sorted by time and a
tie-breaker, in pages) and a mapper turns documents into contract records. One poll:

1. reads from the cursor's time minus the overlap window (default 60 s) up to now plus
   the allowed clock skew (max_skew, TFT_MAX_CLOCK_SKEW_S, 300 s), skipping the documents
   already delivered (their ids are in the cursor), page by page;
2. maps each page; documents that cannot be mapped go to the quarantine;
3. POSTs the records to /feed (in a thread: the next page is fetched and mapped while the
   daemon answers); records the daemon rejects go to the quarantine;
4. only once the daemon answered, marks the page's documents delivered and saves the
   cursor, page after page in order;
5. quarantines, once each, the documents dated past now + max_skew ("future": a host
   whose clock runs fast, or local time marked as UTC), so the cursor never passes that
   point and one such document cannot hide the others.

A mapper may hold back the tail of a page (Metricbeat's join waits for a period's last
metricset); held documents are offered again with the next page, or at the poll's end.
If the daemon does not answer, the poll stops with the cursor where it was.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from adapters import state as cursor_state
from adapters.forward import Forwarder
from adapters.mapping import Failure, Mapping, map_documents
from adapters.prefetch import Prefetch
from adapters.quarantine import Quarantine, rejected_entries
from feedclient.outcomes import OUTCOMES, Counts

log = logging.getLogger(__name__)


class SourceUnavailable(RuntimeError):
    """The database cannot be read now (connection, timeout, server error)."""


@dataclass(frozen=True)
class Doc:
    """A source document: its id (unique in the source), time and body."""

    id: str
    time: datetime
    body: dict[str, Any]


class Source(Protocol):
    def pages(self, start: datetime, until: datetime | None, size: int) -> Iterator[list[Doc]]:
        """Documents with start <= time (< until), sorted by time then a tie-breaker, in
        pages of at most size; raises SourceUnavailable."""
        ...

    def close(self) -> None: ...


@dataclass
class Mapped:
    """What a mapper made of documents: records, failures, and how many of the documents
    (a prefix) it is done with; the rest it wants offered again with more."""

    records: list[dict[str, Any]]
    failures: list[Failure]
    consumed: int


class Mapper(Protocol):
    def __call__(self, bodies: list[dict[str, Any]], *, final: bool, now: datetime) -> Mapped:
        """final: no more documents follow in this poll."""
        ...


# An adapter's counts, per poll and since the start (a Counts): documents read and
# delivered, the records made of them by outcome (OUTCOMES), documents that could not be
# mapped, and documents dated past the clock.
TOTALS = ("documents", "records", *OUTCOMES, "unmappable", "future")


def new_totals(**counts: int) -> Counts:
    """An adapter's counts (TOTALS), zero but for counts."""
    return Counts(TOTALS, **counts)


@dataclass
class Loop:
    """One adapter's loop state and collaborators (see the module docstring)."""

    source: Source
    mapper: Mapper
    send: Callable[[list[dict[str, Any]]], Counts]
    quarantine: Quarantine
    state_file: Path | None
    overlap: timedelta = timedelta(seconds=60)
    batch_size: int = 1000
    backfill: timedelta = timedelta(0)
    max_skew: timedelta = timedelta(seconds=300)  # 0: no limit (simulated time)
    cursor: cursor_state.Cursor = field(default_factory=cursor_state.Cursor)
    _unsaved: bool = field(default=False, repr=False)  # the cursor moved since last saved
    _sender: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="send"), repr=False
    )
    _in_flight: tuple[Future, list[Doc], list[Failure]] | None = field(default=None, repr=False)

    def poll(self, *, now: datetime, stop: Callable[[], bool] = bool) -> Counts:
        """One poll from the cursor (without one: from now - backfill, at least the
        overlap) up to now + max_skew, then the documents dated past that are quarantined;
        the poll's totals. stop() is asked after each page."""
        limit = now + self.max_skew if self.max_skew else None
        self._save()  # a write that failed in the last poll, first
        totals, held = Counts(TOTALS), []
        pages = Prefetch(self.source.pages(self._start(now, limit), limit, self.batch_size))
        try:
            for page in pages:
                fresh = [doc for doc in page if not self.cursor.seen(doc.id)]
                held = self._deliver(held + fresh, final=False, now=now, totals=totals)
                if stop():
                    return totals
            self._deliver(held, final=True, now=now, totals=totals)
        finally:
            pages.close()
            self._settle(totals, now)
        if limit is not None:
            totals.future = self._quarantine_future(limit, now)
        return totals

    def _start(self, now: datetime, limit: datetime | None) -> datetime:
        """Where the poll reads from. With a limit, the cursor stays at or before the clock:
        a document dated ahead (a fast clock, within max_skew) must not make the next poll
        start past the others' documents. A cursor past the limit (moved there by a
        future-dated document before there was a limit, or the clock was set back) would
        hide every document until the clock caught up with it: read again from the backfill."""
        if limit is not None and self.cursor.time is not None and self.cursor.time > limit:
            log.warning(
                "the cursor (%s) is past now + %s: reading again from %s back (the daemon "
                "counts what it already holds as duplicates)",
                self.cursor.time.isoformat(),
                self.max_skew,
                max(self.backfill, self.overlap),
            )
            self.cursor.time = None
        start = self.cursor.start(self.overlap)
        if start is None:
            return now - max(self.backfill, self.overlap)
        return start if limit is None else min(start, now - self.overlap)

    def _quarantine_future(self, limit: datetime, now: datetime) -> int:
        """Quarantine, once each, the documents dated past limit (the first batch_size of
        them, each poll); their ids stay in the cursor until it passes their time."""
        pages = self.source.pages(limit, None, self.batch_size)
        try:
            page = next(pages, [])
        finally:
            pages.close()  # type: ignore[attr-defined]
        fresh = [doc for doc in page if not self.cursor.seen(doc.id)]
        count = self.quarantine.add("future", [_future_entry(d, now, self.max_skew) for d in fresh])
        self.cursor.hold([(doc.id, doc.time) for doc in fresh])
        self._unsaved = self._unsaved or bool(fresh)
        self._save()
        return count

    def _deliver(self, docs: list[Doc], *, final: bool, now: datetime, totals: Counts) -> list:
        """Map what the mapper is done with and start sending it (one batch in flight, so
        the next page is fetched and mapped meanwhile); the rest of docs."""
        if not docs:
            return []
        mapped = self.mapper([d.body for d in docs], final=final, now=now)
        self._settle(totals, now)  # the previous batch's answer first: in order
        future = self._sender.submit(self.send, mapped.records)
        self._in_flight = (future, docs[: mapped.consumed], mapped.failures)
        return docs[mapped.consumed :]

    def _settle(self, totals: Counts, now: datetime) -> None:
        """Wait for the batch in flight; once answered, quarantine its unmappable
        documents, mark its documents delivered and save the cursor. Raises the send's
        error (DaemonUnavailable...): then nothing of that batch is marked."""
        if self._in_flight is None:
            return
        future, done, failures = self._in_flight
        self._in_flight = None
        sent = future.result()
        sent.unmappable = self.quarantine.add("unmappable", [_failure_entry(f) for f in failures])
        sent.documents = len(done)
        until = now if self.max_skew else None  # no cursor past the clock (see _start)
        self.cursor.mark([(d.id, d.time) for d in done], self.overlap, until=until)
        self._unsaved = self._unsaved or bool(done)
        totals.add(sent)
        self._save()

    def _save(self) -> None:
        """Write the cursor if it changed since the last write; StateWriteError leaves it
        to be written by the next batch or poll."""
        if self.state_file is not None and self._unsaved:
            cursor_state.save(self.state_file, self.cursor)
        self._unsaved = False


def plain_mapper(mapping: Mapping) -> Mapper:
    """Each document to one record (the config's field mapping, or passthrough)."""

    def mapper(bodies: list[dict[str, Any]], *, final: bool, now: datetime) -> Mapped:
        records, failures = map_documents(bodies, mapping)
        return Mapped(records, failures, len(bodies))

    return mapper


def forward_to(forwarder: Forwarder, quarantine: Quarantine, batch_size: int) -> Callable:
    """A Loop.send that POSTs records in batches and quarantines what the daemon rejects."""

    def send(records: list[dict[str, Any]]) -> Counts:
        sent = new_totals(records=len(records))
        for first in range(0, len(records), batch_size):
            for answer, batch in forwarder.send(records[first : first + batch_size]):
                sent.add(answer)
                if answer.rejected:
                    entries = rejected_entries(answer.errors, batch)
                    if not entries:  # the whole batch was refused (no per-record errors)
                        entries = [{"record": r, "errors": answer.errors} for r in batch]
                    quarantine.add("rejected", entries)
                    _warn_unlisted(answer.rejected, len(entries))
        return sent

    return send


def _warn_unlisted(rejected: int, listed: int) -> None:
    """The daemon's answer lists the errors of a bounded number of records (the first 100)."""
    if rejected > listed:
        log.warning(
            "the daemon rejected %d records of a batch but named only %d (an answer lists a "
            "bounded number): the other %d are counted, not quarantined; see the daemon's log",
            rejected,
            listed,
            rejected - listed,
        )


def _future_entry(doc: Doc, now: datetime, max_skew: timedelta) -> dict[str, Any]:
    ahead = (doc.time - now).total_seconds()
    problem = (
        f"dated {doc.time.isoformat()}, {ahead:.0f} s ahead of this adapter's clock; the "
        f"limit is {max_skew.total_seconds():g} s (TFT_MAX_CLOCK_SKEW_S; 0 turns the check "
        "off): fix the clock, or the time zone, of the host that wrote it"
    )
    return {"field": "time", "problem": problem, "document": doc.body}


def _failure_entry(failure: Failure) -> dict[str, Any]:
    return {
        "field": failure.field,
        "problem": failure.problem,
        "document": failure.document,
    }
