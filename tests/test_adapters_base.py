"""adapters/base.py: the shared loop's exactly-once delivery, without sockets (a list
source and a recording sender)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from adapters import state
from adapters.base import Doc, Loop, plain_mapper
from adapters.forward import DaemonUnavailable
from adapters.mapping import mapping_from_config
from adapters.quarantine import Quarantine
from tests.adapter_helpers import Recorder, keys
from tests.daemon_helpers import make_record

T0 = datetime(2026, 12, 6, 4, 0, tzinfo=timezone.utc)
NOW = T0 + timedelta(hours=1)


def doc(k: int, seconds: int, server: str = "web1", **overrides: Any) -> Doc:
    at = T0 + timedelta(seconds=seconds)
    body = make_record(server, int(at.timestamp()), **overrides)
    return Doc(f"id{k:05d}", at, body)


class ListSource:
    """Documents in (time, id) order; `visible` hides the late ones until released."""

    def __init__(self, docs: list[Doc]) -> None:
        self.docs = docs
        self.reads = 0

    def pages(self, start: datetime, until: datetime | None, size: int) -> Iterator[list[Doc]]:
        chosen = sorted(
            (d for d in self.docs if d.time >= start and (until is None or d.time < until)),
            key=lambda d: (d.time, d.id),
        )
        for first in range(0, len(chosen), size):
            self.reads += 1
            yield chosen[first : first + size]

    def close(self) -> None:
        pass


def make_loop(source: ListSource, tmp_path: Path, send: Recorder, batch: int = 10) -> Loop:
    path = tmp_path / "cursor.json"
    return Loop(
        source=source,
        mapper=plain_mapper(mapping_from_config(None)),
        send=send,
        quarantine=Quarantine(tmp_path / "quarantine.jsonl"),
        state_file=path,
        batch_size=batch,
        backfill=timedelta(hours=2),
        cursor=state.load(path),
    )


def test_pages_with_shared_timestamps_are_sent_once_and_a_restart_resends_nothing(
    tmp_path: Path,
) -> None:
    docs = [doc(k, 60 * (k // 25), server=f"s{k % 25}") for k in range(100)]  # 25 per time
    source, send = ListSource(docs), Recorder()
    totals = make_loop(source, tmp_path, send, batch=10).poll(now=NOW)
    assert totals.documents == 100 and len(send.sent) == 100
    assert len(set(keys(send.sent))) == 100
    again = Recorder()
    make_loop(source, tmp_path, again).poll(now=NOW)  # a restarted adapter
    assert again.sent == []


def test_late_visible_document_within_the_overlap_is_sent_once(tmp_path: Path) -> None:
    early = [doc(k, 10 * k) for k in range(6)]
    source, send = ListSource(early), Recorder()
    loop = make_loop(source, tmp_path, send)
    loop.poll(now=NOW)
    source.docs.append(doc(99, 25, server="late"))  # older than the cursor, seen late
    loop.poll(now=NOW)
    assert keys(send.sent).count(("late", send.sent[-1]["timestamp"])) == 1
    assert len(send.sent) == 7
    loop.poll(now=NOW)
    assert len(send.sent) == 7


def test_the_cursor_stays_while_the_daemon_is_down(tmp_path: Path) -> None:
    source, send = ListSource([doc(k, k) for k in range(5)]), Recorder()
    loop = make_loop(source, tmp_path, send)
    send.down = True
    with pytest.raises(DaemonUnavailable):
        loop.poll(now=NOW)
    assert loop.cursor.time is None and not (tmp_path / "cursor.json").exists()
    send.down = False
    loop.poll(now=NOW)
    assert len(send.sent) == 5 and state.load(tmp_path / "cursor.json").time == T0 + timedelta(
        seconds=4
    )


def test_unmappable_documents_are_quarantined_and_passed(tmp_path: Path) -> None:
    bad = doc(1, 1, mem_used_pct="lots")
    source, send = ListSource([doc(0, 0), bad, doc(2, 2)]), Recorder()
    totals = make_loop(source, tmp_path, send).poll(now=NOW)
    assert totals.unmappable == 1 and totals.documents == 3 and len(send.sent) == 2
    text = (tmp_path / "quarantine.jsonl").read_text()
    assert '"kind":"unmappable"' in text and "mem_used_pct" in text


def test_first_start_reads_the_backfill_and_nothing_older(tmp_path: Path) -> None:
    old, recent = doc(0, -3 * 3600), doc(1, 0)  # 3 h and 1 h before NOW; backfill is 2 h
    send = Recorder()
    make_loop(ListSource([old, recent]), tmp_path, send).poll(now=NOW)
    assert keys(send.sent) == keys([recent.body])


def test_held_documents_are_offered_again_with_the_next_page(tmp_path: Path) -> None:
    """A mapper that holds the last document of each call (like Metricbeat's join)."""
    seen: list[int] = []

    def holding(bodies: list[dict[str, Any]], *, final: bool, now: datetime) -> Any:
        from adapters.base import Mapped

        seen.append(len(bodies))
        done = len(bodies) if final else len(bodies) - 1
        return Mapped([dict(b) for b in bodies[:done]], [], done)

    send = Recorder()
    loop = make_loop(ListSource([doc(k, k) for k in range(7)]), tmp_path, send, batch=3)
    loop.mapper = holding
    loop.poll(now=NOW)
    assert seen == [3, 4, 2, 1] and len(send.sent) == 7 and len(set(keys(send.sent))) == 7
