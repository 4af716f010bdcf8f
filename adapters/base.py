"""The loop every adapter shares: poll the source, map, forward, quarantine, keep the cursor.

A source implements only `pages()` (its documents from a time on, sorted by time and a
tie-breaker, in pages) and a mapper turns documents into contract records. One poll:

1. reads from the cursor's time minus the overlap window (default 60 s), skipping the
   documents already delivered (their ids are in the cursor), page by page;
2. maps each page; documents that cannot be mapped go to the quarantine;
3. POSTs the records to /feed (in a thread: the next page is fetched and mapped while the
   daemon answers); records the daemon rejects go to the quarantine;
4. only once the daemon answered, marks the page's documents delivered and saves the
   cursor, page after page in order.

A mapper may hold back the tail of a page (Metricbeat's join waits for a period's last
metricset); held documents are offered again with the next page, or at the poll's end.
If the daemon does not answer, the poll stops with the cursor where it was.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from adapters import state as cursor_state
from adapters.forward import Forwarder
from adapters.mapping import Failure, Mapping, map_documents
from adapters.quarantine import Quarantine, rejected_entries

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


@dataclass
class Totals:
    """Counts since the start (and per poll): documents read and delivered, records."""

    documents: int = 0
    records: int = 0
    applied: int = 0
    duplicates: int = 0
    stale: int = 0
    rejected: int = 0
    unmappable: int = 0

    def add(self, other: Totals) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def text(self) -> str:
        return ", ".join(f"{getattr(self, k)} {k}" for k in self.__dataclass_fields__)


@dataclass
class Loop:
    """One adapter's loop state and collaborators (see the module docstring)."""

    source: Source
    mapper: Mapper
    send: Callable[[list[dict[str, Any]]], Totals]
    quarantine: Quarantine
    state_file: Path | None
    overlap: timedelta = timedelta(seconds=60)
    batch_size: int = 1000
    backfill: timedelta = timedelta(0)
    cursor: cursor_state.Cursor = field(default_factory=cursor_state.Cursor)
    _sender: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="send"), repr=False
    )
    _in_flight: tuple[Future, list[Doc], list[Failure]] | None = field(default=None, repr=False)

    def poll(self, *, now: datetime, stop: Callable[[], bool] = bool) -> Totals:
        """One poll from the cursor (without one: from now - backfill, at least the
        overlap); the poll's totals. stop() is asked after each page."""
        start = self.cursor.start(self.overlap) or now - max(self.backfill, self.overlap)
        totals, held = Totals(), []
        pages = Prefetch(self.source.pages(start, None, self.batch_size))
        try:
            for page in pages:
                fresh = [doc for doc in page if not self.cursor.seen(doc.id)]
                held = self._deliver(held + fresh, final=False, now=now, totals=totals)
                if stop():
                    return totals
            self._deliver(held, final=True, now=now, totals=totals)
        finally:
            pages.close()
            self._settle(totals)
        return totals

    def _deliver(self, docs: list[Doc], *, final: bool, now: datetime, totals: Totals) -> list:
        """Map what the mapper is done with and start sending it (one batch in flight, so
        the next page is fetched and mapped meanwhile); the rest of docs."""
        if not docs:
            return []
        mapped = self.mapper([d.body for d in docs], final=final, now=now)
        self._settle(totals)  # the previous batch's answer first: the cursor moves in order
        future = self._sender.submit(self.send, mapped.records)
        self._in_flight = (future, docs[: mapped.consumed], mapped.failures)
        return docs[mapped.consumed :]

    def _settle(self, totals: Totals) -> None:
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
        self.cursor.mark([(d.id, d.time) for d in done], self.overlap)
        if self.state_file is not None and done:
            cursor_state.save(self.state_file, self.cursor)
        totals.add(sent)


class Prefetch:
    """Pages read in a thread, one ahead of the loop: the database's answer time overlaps
    with mapping and sending. close() ends the thread (the source's generator is closed
    there, so its cleanup, e.g. closing a point in time, runs)."""

    def __init__(self, pages: Iterator[list[Doc]]) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(pages,), daemon=True)
        self._thread.start()

    def __iter__(self) -> Iterator[list[Doc]]:
        while (item := self._queue.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self, pages: Iterator[list[Doc]]) -> None:
        try:
            for page in pages:
                if not self._put(page):
                    break
        except BaseException as error:  # handed to the loop's thread, raised there
            self._put(error)
        finally:
            pages.close()  # type: ignore[attr-defined]
            self._put(_END)

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False


_END = object()


def plain_mapper(mapping: Mapping) -> Mapper:
    """Each document to one record (the config's field mapping, or passthrough)."""

    def mapper(bodies: list[dict[str, Any]], *, final: bool, now: datetime) -> Mapped:
        records, failures = map_documents(bodies, mapping)
        return Mapped(records, failures, len(bodies))

    return mapper


def forward_to(forwarder: Forwarder, quarantine: Quarantine, batch_size: int) -> Callable:
    """A Loop.send that POSTs records in batches and quarantines what the daemon rejects."""

    def send(records: list[dict[str, Any]]) -> Totals:
        totals = Totals(records=len(records))
        for first in range(0, len(records), batch_size):
            for answer, batch in forwarder.send(records[first : first + batch_size]):
                for name, value in answer.counts().items():
                    setattr(totals, name, getattr(totals, name) + value)
                if answer.rejected:
                    entries = rejected_entries(answer.errors, batch)
                    if not entries:  # the whole batch was refused (no per-record errors)
                        entries = [{"record": r, "errors": answer.errors} for r in batch]
                    quarantine.add("rejected", entries)
        return totals

    return send


def _failure_entry(failure: Failure) -> dict[str, Any]:
    return {
        "field": failure.field,
        "problem": failure.problem,
        "document": failure.document,
    }
