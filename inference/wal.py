"""A write-ahead log of accepted /feed batches: an acknowledged record survives kill -9
(or a power cut) between two snapshots of the state file.

As in Prometheus' TSDB WAL, numbered segments (``00000001.wal``, ...) hold one frame per
batch, encoded with numpy's tobytes (no per-record Python, no pickle; the frame format
is in inference/wal_frames.py).

append() write()s a frame: once it returns, the process may die. wait_durable(seq)
returns once an fsync covering seq is done (group commit: concurrent callers share one).
A snapshot calls rotate() under the service lock (everything in lower segments is in
it) and truncate() once it is durable. replay() reads the segments on start; a frame
torn by a crash, or failing its CRC, ends its segment with a warning, never an
exception, and each run writes to new segments (never after such a tail). An flock
keeps a second daemon out of the directory.

A failed fsync is never retried on the same file: after an EIO the kernel may have
dropped the dirty pages and a second fsync would report success for data that is gone
(PostgreSQL's "fsyncgate"). The log refuses frames (``failed`` says why; /feed answers
503, which senders retry) until a snapshot recovers it: rotate() then abandons the
failed segments unsynced, the snapshot holds every record they held, and truncate()
deletes them and opens the log again in a new segment (inference/worker.py's WalFlusher
takes that snapshot at once).
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from contract_parse import Batch
from durable import fsync_directory
from inference.wal_frames import encode, read_segment

logger = logging.getLogger(__name__)

SUFFIX = ".wal"
_sync = getattr(os, "fdatasync", os.fsync)  # the data and the file's size, not its times


class WriteAheadLogError(RuntimeError):
    """The log cannot be used as asked; the message says how to fix it."""


class WriteAheadLog:
    """The log in one directory; append/wait_durable/rotate/truncate are thread-safe.

    Counters for /health: segments and bytes (on disk now), appended (frames this run)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        fsync_directory(directory.parent)  # the directory itself survives a power cut
        self._lock_fd = _lock_directory(directory)
        self._sizes = {
            int(p.name[: -len(SUFFIX)]): p.stat().st_size
            for p in directory.glob(f"*{SUFFIX}")
            if p.name[: -len(SUFFIX)].isdigit()
        }
        self._number = max(self._sizes, default=0) + 1  # never append to an old segment
        self._fd: int | None = None
        self._retired: list[int] = []  # closed segments' fds, synced and closed by a leader
        self._closed = False
        self._failed: str | None = None  # an fsync failed: nothing can be promised any more
        self._abandoned_below = 0  # segments below this were given up after a failed fsync
        self._cond = threading.Condition(threading.Lock())
        self._seq = self._durable = 0
        self._syncing = False
        self.appended = 0

    @property
    def segments(self) -> int:
        with self._cond:
            return len(self._sizes)

    @property
    def bytes(self) -> int:
        with self._cond:
            return sum(self._sizes.values())

    @property
    def failed(self) -> str | None:
        """Why the log refuses frames (a failed fsync), until a snapshot recovers it."""
        return self._failed

    @property
    def durable(self) -> int:
        """The highest sequence number known to be on disk."""
        return self._durable

    def append(self, batch: Batch, received_at: float) -> int:
        """Write one frame (in the OS once this returns); its sequence number. Call it
        under the caller's lock, so that frames are in the order batches were applied."""
        frame = encode(batch, received_at)
        with self._cond:
            fd = self._current()
            try:
                _write_all(fd, frame)
            except OSError:
                self._retire()  # a partial frame may end it: later frames go elsewhere
                raise
            self._sizes[self._number] += len(frame)
            self._seq += 1
            self.appended += 1
            return self._seq

    def wait_durable(self, seq: int) -> None:
        """Return once an fsync covering seq has finished (call it outside your lock).
        Whoever finds no fsync running leads one for everything written so far; the
        others wait for it, and share it."""
        with self._cond:
            self._sync_through(seq)

    def sync(self) -> None:
        """fsync everything written so far (TFT_WAL_FSYNC_S's group commit); a no-op once
        closed."""
        with self._cond:
            if not self._closed:
                self._sync_through(self._seq)

    def _sync_through(self, seq: int) -> None:
        while self._durable < seq:
            if self._failed:
                raise WriteAheadLogError(self._failed)
            if self._syncing:
                self._cond.wait()
            else:
                self._lead_sync()

    def _lead_sync(self) -> None:
        """Sync the retired segments and the current one, outside the lock."""
        retired, self._retired = self._retired, []
        fds, target = [*retired, *([self._fd] if self._fd is not None else [])], self._seq
        self._syncing = True
        self._cond.release()
        try:
            for fd in fds:
                _sync(fd)
        except OSError as exc:
            self._failed = (
                f"an fsync of the write-ahead log in {self.directory} failed ({exc}): records "
                "may not be on disk; refusing records until a snapshot holds them (check "
                "the disk)"
            )
            logger.error("%s", self._failed)
            raise WriteAheadLogError(self._failed) from exc
        finally:
            for fd in retired:
                os.close(fd)
            self._cond.acquire()
            self._syncing = False
            self._cond.notify_all()
        self._durable = max(self._durable, target)

    def rotate(self) -> int:
        """Sync and close the current segment and start a new one; its number. Every
        frame appended before this call is in a segment with a lower number."""
        with self._cond:
            if self._failed:
                return self._abandon()
            if self._fd is not None and self._sizes[self._number] > 0:
                self._retire()
                self._sync_through(self._seq)
            self._current()
            return self._number

    def _abandon(self) -> int:
        """rotate() after a failed fsync: close the segments unsynced (the caller's
        snapshot holds their records) and number the next one past them."""
        while self._syncing:
            self._cond.wait()
        if self._fd is not None:
            self._retire()
        for fd in self._retired:
            os.close(fd)
        self._retired = []
        self._abandoned_below = self._number
        return self._number

    def truncate(self, before: int) -> int:
        """Delete the segments numbered below before (their records are in a durable
        snapshot); how many. The segment being written is never deleted. If that covers
        the segments abandoned after a failed fsync, the log accepts frames again."""
        with self._cond:
            doomed = sorted(n for n in self._sizes if n < min(before, self._number))
            for number in doomed:
                try:
                    os.unlink(self._path(number))
                except FileNotFoundError:
                    pass
                del self._sizes[number]
        if doomed:
            fsync_directory(self.directory)
            logger.debug("deleted %d write-ahead log segments below %d", len(doomed), before)
        with self._cond:
            if self._failed and self._abandoned_below and before >= self._abandoned_below:
                self._failed, self._durable = None, self._seq
                logger.warning(
                    "write-ahead log recovered: a snapshot holds the records of the segments "
                    "whose fsync failed; logging goes on in segment %d",
                    self._number,
                )
        return len(doomed)

    def replay(self, start: int = 0) -> Iterator[tuple[Batch, float]]:
        """(batch, received_at) of every frame in segments numbered start or more, in
        order. Call it before the first append; the log goes on in a new segment numbered
        at least start (even if the segments were deleted by hand)."""
        with self._cond:
            if self.appended:
                raise WriteAheadLogError("replay() must come before the first append()")
            self._number = max(self._number, start)
            numbers = sorted(n for n in self._sizes if start <= n < self._number)
        return self._frames(numbers)

    def _frames(self, numbers: list[int]) -> Iterator[tuple[Batch, float]]:
        for number in numbers:
            yield from read_segment(self._path(number))

    def close(self) -> None:
        """Sync and close the segments and release the directory."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            try:
                if self._fd is not None:
                    self._retire()
                if self._retired and not self._failed:
                    self._sync_through(self._seq)
            finally:
                while self._syncing:
                    self._cond.wait()
                for fd in self._retired:
                    os.close(fd)
                self._retired = []
                os.close(self._lock_fd)

    # --- segments (called with the condition's lock held) ------------------------------

    def _path(self, number: int) -> Path:
        return self.directory / f"{number:08d}{SUFFIX}"

    def _current(self) -> int:
        if self._closed:
            raise WriteAheadLogError(f"the write-ahead log in {self.directory} is closed")
        if self._failed:
            raise WriteAheadLogError(self._failed)
        if self._fd is None:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
            self._fd = os.open(self._path(self._number), flags, 0o600)
            self._sizes[self._number] = 0
            fsync_directory(self.directory)
        return self._fd

    def _retire(self) -> None:
        """End the current segment; the next leader syncs and closes it (a leader may be
        syncing it now, so it is not closed here)."""
        self._retired.append(self._fd)
        self._fd = None
        self._number += 1


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _lock_directory(directory: Path) -> int:
    """An flock on directory/lock, held until close(): one daemon per log."""
    fd = os.open(directory / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise WriteAheadLogError(
            f"another daemon (or another WriteAheadLog) is using {directory}: give each "
            "daemon its own state directory, or stop the other one first"
        ) from None
    return fd
