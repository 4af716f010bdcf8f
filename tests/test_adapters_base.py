"""adapters/base.py: the shared loop's exactly-once delivery, without sockets (a list
source and a recording sender)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from adapters import state
from adapters.base import Doc, Loop, plain_mapper
from adapters.forward import DaemonUnavailable
from adapters.mapping import mapping_from_config
from adapters.quarantine import Quarantine, QuarantineWriteError
from tests.adapter_helpers import ListSource, Recorder, keys
from tests.daemon_helpers import make_record

T0 = datetime(2026, 12, 6, 4, 0, tzinfo=timezone.utc)
NOW = T0 + timedelta(hours=1)


def doc(k: int, seconds: int, server: str = "web1", **overrides: Any) -> Doc:
    at = T0 + timedelta(seconds=seconds)
    body = make_record(server, int(at.timestamp()), **overrides)
    return Doc(f"id{k:05d}", at, body)


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


def test_a_document_whose_time_overflows_is_quarantined_and_the_rest_delivered(
    tmp_path: Path,
) -> None:
    """0001-01-01T00:00:00+01:00 raised OverflowError out of the mapping: a crash loop."""
    bad = doc(1, 1)
    bad.body["timestamp"] = "0001-01-01T00:00:00+01:00"
    source, send = ListSource([doc(0, 0), bad, doc(2, 2)]), Recorder()
    totals = make_loop(source, tmp_path, send).poll(now=NOW)
    assert totals.unmappable == 1 and totals.documents == 3 and len(send.sent) == 2
    assert "out of range in UTC" in (tmp_path / "quarantine.jsonl").read_text()


def test_a_host_ahead_within_the_skew_is_delivered_and_hides_no_other_host(
    tmp_path: Path,
) -> None:
    """4 min ahead is within TFT_MAX_CLOCK_SKEW_S (the daemon takes it), but a cursor moved
    there would make the next poll start 3 min past the other hosts' new documents."""
    source, send = ListSource([doc(0, 3600 + 240, server="fast")]), Recorder()
    loop = make_loop(source, tmp_path, send)
    loop.poll(now=NOW)
    source.docs += [doc(k, 3600 + 5, server=f"host{k}") for k in range(1, 6)]
    totals = loop.poll(now=NOW + timedelta(seconds=10))
    loop.poll(now=NOW + timedelta(seconds=20))  # reads "fast" again: skipped, not resent
    assert [r["server_name"] for r in send.sent] == ["fast"] + [f"host{k}" for k in range(1, 6)]
    assert totals.future == 0 and loop.cursor.time == NOW + timedelta(seconds=5)


def test_a_cursor_already_past_the_clock_reads_again_from_the_backfill(tmp_path: Path) -> None:
    """A state file written before the limit existed, moved a day ahead by one document."""
    stuck = state.Cursor()
    stuck.mark([("ahead", NOW + timedelta(days=1))], timedelta(seconds=60))
    state.save(tmp_path / "cursor.json", stuck)
    send = Recorder()
    loop = make_loop(ListSource([doc(k, 60 * k) for k in range(3)]), tmp_path, send)
    loop.poll(now=NOW)
    assert len(send.sent) == 3 and loop.cursor.time == T0 + timedelta(seconds=120)


def test_max_skew_0_turns_the_limit_off(tmp_path: Path) -> None:
    """As TFT_MAX_CLOCK_SKEW_S=0 does in the daemon: simulated time may run ahead."""
    source, send = ListSource([doc(0, 0), doc(1, 2 * 3600)]), Recorder()  # one 1 h ahead
    loop = make_loop(source, tmp_path, send)
    loop.max_skew = timedelta(0)
    assert loop.poll(now=NOW).future == 0 and len(send.sent) == 2


def test_a_quarantine_that_cannot_be_written_fails_the_poll_and_keeps_the_cursor(
    tmp_path: Path,
) -> None:
    source, send = ListSource([doc(0, 0), doc(1, 1, mem_used_pct="lots")]), Recorder()
    loop = make_loop(source, tmp_path, send)
    (tmp_path / "quarantine.jsonl").mkdir()  # open() fails: IsADirectoryError
    with pytest.raises(QuarantineWriteError, match="cannot write the quarantine file"):
        loop.poll(now=NOW)
    assert loop.cursor.time is None and not (tmp_path / "cursor.json").exists()
    (tmp_path / "quarantine.jsonl").rmdir()
    assert loop.poll(now=NOW).unmappable == 1 and loop.cursor.time == T0 + timedelta(seconds=1)


def test_a_state_file_that_cannot_be_written_is_written_by_the_next_poll(tmp_path: Path) -> None:
    source, send = ListSource([doc(k, k) for k in range(3)]), Recorder()
    loop = make_loop(source, tmp_path, send)
    (tmp_path / "cursor.json").mkdir()  # os.replace() onto it fails
    with pytest.raises(state.StateWriteError, match="cannot write the adapter state file"):
        loop.poll(now=NOW)
    (tmp_path / "cursor.json").rmdir()
    assert loop.poll(now=NOW).documents == 0  # nothing new to send, but the cursor is saved
    assert state.load(tmp_path / "cursor.json").time == T0 + timedelta(seconds=2)
