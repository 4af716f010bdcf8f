"""The write-ahead log: what append() wrote comes back from replay(), a torn or damaged
tail ends its segment with a warning (never an exception), segments rotate and are
truncated by number, and wait_durable() shares fsyncs between threads."""

from __future__ import annotations

import errno
import logging
import os
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from inference import wal as wal_module
from inference.ingest import Batch
from inference.wal import WriteAheadLog, WriteAheadLogError

UNICODE = ["ünïcødé-01", "сервер-02", "服务器-03", "emoji-😀-04", "plain"]


def batch(names: list[str], start: int = 1_750_000_000, seed: int = 0) -> Batch:
    rng = np.random.default_rng(seed)
    n = len(names)
    return Batch(
        names=list(names),
        seconds=start + np.arange(n, dtype=np.int64) * 7,
        states=rng.integers(0, 8, n).astype(np.int8),
        values=rng.random((n, 14)) * 100,
    )


def assert_same(got: Batch, want: Batch) -> None:
    assert got.names == want.names
    for name in ("seconds", "states", "values"):
        a, b = getattr(got, name), getattr(want, name)
        assert a.dtype == b.dtype and a.shape == b.shape, name
        np.testing.assert_array_equal(a, b, name)


def segments(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("*.wal"))


def written(directory: Path, batches: list[Batch]) -> list[int]:
    """Append batches in one run (segment 1), close; the end offset of each frame."""
    log, ends = WriteAheadLog(directory), []
    for i, b in enumerate(batches):
        log.append(b, 100.0 + i)
        ends.append(log.bytes)
    log.close()
    return ends


def replayed(directory: Path, start: int = 0) -> list[tuple[Batch, float]]:
    log = WriteAheadLog(directory)
    try:
        return list(log.replay(start))
    finally:
        log.close()


def test_batches_come_back_in_order_with_unicode_names(tmp_path: Path) -> None:
    batches = [batch(UNICODE, seed=1), batch(["a"] * 3, seed=2), batch([], seed=3)]
    batches.append(batch([f"srv{i:04d}" for i in range(1000)], seed=4))
    written(tmp_path, batches)
    frames = replayed(tmp_path)
    assert [received for _, received in frames] == [100.0, 101.0, 102.0, 103.0]
    for (got, _), want in zip(frames, batches, strict=True):
        assert_same(got, want)


@pytest.mark.parametrize("cut", [5, 40, -1])  # in the frame header, the payload, its end
def test_a_torn_tail_ends_the_segment_with_a_warning(
    tmp_path: Path, cut: int, caplog: pytest.LogCaptureFixture
) -> None:
    batches = [batch(UNICODE, seed=s) for s in range(3)]
    ends = written(tmp_path, batches)
    path = tmp_path / "00000001.wal"
    os.truncate(path, ends[1] + cut if cut > 0 else ends[2] + cut)
    with caplog.at_level(logging.WARNING, logger="inference.wal"):
        frames = replayed(tmp_path)
    assert len(frames) == 2
    assert_same(frames[1][0], batches[1])
    assert str(path) in caplog.text and f"offset {ends[1]}" in caplog.text
    assert "torn" in caplog.text


@pytest.mark.parametrize("frame", [0, 1, 2])
def test_a_damaged_frame_ends_its_segment_without_an_exception(
    tmp_path: Path, frame: int, caplog: pytest.LogCaptureFixture
) -> None:
    batches = [batch(UNICODE, seed=s) for s in range(3)]
    ends = written(tmp_path, batches)
    path = tmp_path / "00000001.wal"
    data = bytearray(path.read_bytes())
    data[ends[frame] - 20] ^= 0xFF  # a value in the frame's payload
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="inference.wal"):
        frames = replayed(tmp_path)
    assert [r for _, r in frames] == [100.0 + i for i in range(frame)]
    offset = ends[frame - 1] if frame else 0
    assert "CRC mismatch" in caplog.text and f"offset {offset}" in caplog.text


def test_a_segment_of_garbage_yields_nothing_and_the_next_segment_still_counts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "00000001.wal").write_bytes(b"\x00garbage" * 100)
    written(tmp_path, [batch(["x"])])  # a new run writes segment 2
    with caplog.at_level(logging.WARNING, logger="inference.wal"):
        frames = replayed(tmp_path)
    assert [b.names for b, _ in frames] == [["x"]]
    assert "00000001.wal" in caplog.text and "no frame magic" in caplog.text


def test_rotate_and_truncate_number_the_segments(tmp_path: Path) -> None:
    log = WriteAheadLog(tmp_path)
    assert log.append(batch(["a"]), 1.0) == 1
    assert segments(tmp_path) == ["00000001.wal"]
    assert log.rotate() == 2
    assert log.rotate() == 2  # nothing appended since: no new segment
    assert log.append(batch(["b"]), 2.0) == 2 and log.append(batch(["c"]), 3.0) == 3
    assert segments(tmp_path) == ["00000001.wal", "00000002.wal"]
    assert log.segments == 2 and log.appended == 3
    assert log.truncate(2) == 1
    assert segments(tmp_path) == ["00000002.wal"] and log.segments == 1
    assert log.bytes == (tmp_path / "00000002.wal").stat().st_size > 0
    assert log.truncate(99) == 0  # the segment being written stays
    log.close()
    assert [b.names for b, _ in replayed(tmp_path, start=2)] == [["b"], ["c"]]
    assert replayed(tmp_path, start=3) == []


def test_files_are_private(tmp_path: Path) -> None:
    log = WriteAheadLog(tmp_path / "wal")
    log.append(batch(["a"]), 1.0)
    log.rotate()
    log.close()
    for path in (tmp_path / "wal").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE((tmp_path / "wal").stat().st_mode) == 0o700


def test_replay_then_append_goes_to_a_new_segment(tmp_path: Path) -> None:
    written(tmp_path, [batch(["a"]), batch(["b"])])
    torn = tmp_path / "00000001.wal"
    with open(torn, "ab") as handle:
        handle.write(b"TWAL\x01")  # a crash mid-write
    size = torn.stat().st_size
    log = WriteAheadLog(tmp_path)
    assert [b.names for b, _ in log.replay()] == [["a"], ["b"]]
    log.append(batch(["c"]), 3.0)
    log.close()
    assert segments(tmp_path) == ["00000001.wal", "00000002.wal"]
    assert torn.stat().st_size == size
    assert [b.names for b, _ in replayed(tmp_path)] == [["a"], ["b"], ["c"]]


def test_the_log_goes_on_at_the_snapshots_number_even_if_segments_vanished(
    tmp_path: Path,
) -> None:
    log = WriteAheadLog(tmp_path)
    assert list(log.replay(start=7)) == []
    log.append(batch(["a"]), 1.0)
    log.close()
    assert segments(tmp_path) == ["00000007.wal"]
    assert [b.names for b, _ in replayed(tmp_path, start=7)] == [["a"]]


def test_one_log_per_directory(tmp_path: Path) -> None:
    log = WriteAheadLog(tmp_path)
    with pytest.raises(WriteAheadLogError, match="its own state directory"):
        WriteAheadLog(tmp_path)
    log.close()
    WriteAheadLog(tmp_path).close()  # released by close()


def test_misuse_is_refused_with_a_reason(tmp_path: Path) -> None:
    log = WriteAheadLog(tmp_path)
    log.append(batch(["a"]), 1.0)
    with pytest.raises(WriteAheadLogError, match="before the first append"):
        log.replay()
    log.close()
    log.close()  # idempotent
    with pytest.raises(WriteAheadLogError, match="is closed"):
        log.append(batch(["b"]), 2.0)


def test_a_failed_write_moves_on_to_a_new_segment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = WriteAheadLog(tmp_path)
    log.append(batch(["a"]), 1.0)
    real_write, calls = os.write, []

    def disk_fills_up(fd: int, data: bytes) -> int:
        calls.append(len(data))
        if len(calls) == 1:
            return real_write(fd, bytes(data)[:30])  # a partial frame
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(wal_module.os, "write", disk_fills_up)
    with pytest.raises(OSError, match="No space"):
        log.append(batch(["lost"]), 2.0)
    monkeypatch.setattr(wal_module.os, "write", real_write)
    seq = log.append(batch(["b"]), 3.0)
    log.wait_durable(seq)
    log.close()
    assert segments(tmp_path) == ["00000001.wal", "00000002.wal"]
    assert [b.names for b, _ in replayed(tmp_path)] == [["a"], ["b"]]


def test_concurrent_writers_share_fsyncs_and_all_become_durable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log, caller_lock = WriteAheadLog(tmp_path), threading.Lock()
    completed: list[int] = []  # for each finished fsync, the frames written when it began
    real_sync = wal_module._sync

    def slow_sync(fd: int) -> None:
        covers = log._seq
        time.sleep(0.003)
        real_sync(fd)
        completed.append(covers)

    monkeypatch.setattr(wal_module, "_sync", slow_sync)
    errors: list[str] = []

    def writer(k: int) -> None:
        for i in range(25):
            with caller_lock:  # as the service appends under its lock
                seq = log.append(batch([f"w{k}"], start=i), float(i))
            log.wait_durable(seq)
            if not completed or max(completed) < seq:
                errors.append(f"wait_durable({seq}) returned before an fsync covered it")

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(t.is_alive() for t in threads) and errors == []
    assert log.durable == log.appended == 200
    assert len(completed) < 100  # shared: one per thread would be 200
    log.close()
    assert len(replayed(tmp_path)) == 200


def test_rotate_waits_for_a_running_fsync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = WriteAheadLog(tmp_path)
    seq = log.append(batch(["a"]), 1.0)
    entered, release, real_sync = threading.Event(), threading.Event(), wal_module._sync
    errors: list[BaseException] = []

    def first_sync_blocks(fd: int) -> None:
        if not entered.is_set():
            entered.set()
            release.wait(5)
        real_sync(fd)  # EBADF if the segment was closed under it

    def catching(action: Callable[[], object]) -> threading.Thread:
        def run() -> None:
            try:
                action()
            except BaseException as exc:  # reported below
                errors.append(exc)

        return threading.Thread(target=run)

    monkeypatch.setattr(wal_module, "_sync", first_sync_blocks)
    rotated: list[int] = []
    leader = catching(lambda: log.wait_durable(seq))
    leader.start()
    assert entered.wait(5)
    rotator = catching(lambda: rotated.append(log.rotate()))
    rotator.start()
    time.sleep(0.05)
    assert rotated == []  # waits for the leader's fsync before closing the segment
    release.set()
    leader.join(5), rotator.join(5)
    assert errors == [] and rotated == [2] and log.durable == seq
    log.close()


def test_a_failed_fsync_is_never_reported_as_durable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    log = WriteAheadLog(tmp_path)
    seq = log.append(batch(["a"]), 1.0)

    def broken_disk(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(wal_module, "_sync", broken_disk)
    with pytest.raises(WriteAheadLogError, match="check the disk"):
        log.wait_durable(seq)
    monkeypatch.undo()  # the disk seems fine again, but the lost pages are not rewritten
    with pytest.raises(WriteAheadLogError, match="may not be on disk"):
        log.wait_durable(seq)
    with pytest.raises(WriteAheadLogError, match="may not be on disk"):
        log.append(batch(["b"]), 2.0)
    assert log.durable == 0 and "fsync of the write-ahead log" in caplog.text
    log.close()


def test_a_snapshot_after_a_failed_fsync_abandons_the_segment_and_opens_the_log_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = WriteAheadLog(tmp_path)
    seq = log.append(batch(["a"]), 1.0)

    def broken_disk(fd: int) -> None:
        raise OSError(errno.EIO, "EIO")

    monkeypatch.setattr(wal_module, "_sync", broken_disk)
    with pytest.raises(WriteAheadLogError):
        log.wait_durable(seq)
    monkeypatch.undo()
    assert "EIO" in (log.failed or "")
    wal_from = log.rotate()  # under the snapshot's lock: the failed segment is given up
    assert wal_from == 2 and log.failed  # still refusing until the snapshot is durable
    with pytest.raises(WriteAheadLogError):
        log.append(batch(["b"]), 2.0)
    assert log.truncate(wal_from) == 1 and segments(tmp_path) == []
    assert log.failed is None and log.durable == seq  # the snapshot holds it
    log.wait_durable(log.append(batch(["b"]), 2.0))
    assert segments(tmp_path) == ["00000002.wal"]
    log.close()


def test_rotations_leak_no_file_descriptors(tmp_path: Path) -> None:
    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    before = open_fds()
    log = WriteAheadLog(tmp_path)
    for i in range(20):
        log.wait_durable(log.append(batch(["a"], start=i), float(i)))
        log.rotate()
        assert open_fds() <= before + 3  # the lock, the segment, perhaps one retired
    log.wait_durable(log.append(batch(["b"]), 99.0))
    log.rotate()  # leaves a synced segment retired, for close() to close
    log.close()
    assert open_fds() == before
