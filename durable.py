"""Durable file writes: after a crash or a power cut, the old file or the new one, never
a mix, and never a file that is there but empty.

write_atomically writes a temporary file in the target's directory (``.NAME.RANDOM.tmp``:
hidden, and on the same file system, so the rename is atomic), fsyncs it, renames it over
the target and fsyncs the directory (the rename itself survives a power cut). A write
that fails removes the temporary file and leaves the old target as it was. mode
PRIVATE (0600) is for secrets and state; without a mode the file gets what the umask
gives a new file. point_link moves a symlink the same way (training/artifact.py's
models/latest), and fsync_directory makes any creation, rename or deletion durable.

Every writer of state, keys, cursors and artifacts uses these: the daemon's state file
(inference/persistence.py) and write-ahead log directory (inference/wal.py), the
adapters' cursor (adapters/state.py), the generator's cores file (simfeed/runner.py),
the API key (generate_api_key.py) and the model artifact (training/artifact.py).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

PRIVATE = 0o600  # owner read/write only: keys, the daemon's state, adapter cursors

Content = bytes | str | Callable[[BinaryIO], object]


def fsync_directory(directory: Path | str) -> None:
    """Make a file's creation, rename or deletion in directory durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path | str) -> None:
    """Flush a file that something else wrote (e.g. a library given only a path) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path | str, content: Content, *, mode: int | None = None) -> None:
    """Replace path with content durably (see the module docstring): bytes, str (written
    as UTF-8) or a function that writes to the open binary file. mode: the file's mode
    (e.g. PRIVATE); None: what the umask gives a new file. Raises OSError (the target
    untouched), or whatever the function raised."""
    path = Path(path)
    fd, temp = _create_temporary(path, mode)
    try:
        with os.fdopen(fd, "wb") as out:
            if isinstance(content, str):
                out.write(content.encode("utf-8"))
            elif isinstance(content, bytes | bytearray | memoryview):
                out.write(content)
            else:
                content(out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def point_link(link: Path, target: str) -> None:
    """Point link at target (a name relative to link's directory) atomically: a symlink
    made beside it, renamed over it. Where the file system has no symlinks, link becomes
    a text file naming target (written with write_atomically). The directory is fsynced."""
    temp = link.with_name(f".{link.name}.tmp")
    temp.unlink(missing_ok=True)
    try:
        temp.symlink_to(target, target_is_directory=True)
    except OSError:
        write_atomically(link, target + "\n")
        return
    try:
        os.replace(temp, link)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_directory(link.parent)


def publish_directory(temp: Path, final: Path) -> None:
    """Make a directory written under a temporary name durable, then give it its name:
    every file in it and the directory fsynced, renamed to final, the parent fsynced.
    final must not exist."""
    for item in temp.iterdir():
        if item.is_file() and not item.is_symlink():
            fsync_file(item)
    fsync_directory(temp)
    temp.rename(final)
    fsync_directory(final.parent)


def _create_temporary(path: Path, mode: int | None) -> tuple[int, Path]:
    """A new, exclusively created ``.NAME.RANDOM.tmp`` beside path, opened for writing."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    while True:
        temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(temp, flags, 0o666 if mode is None else mode)
        except FileExistsError:
            continue
        if mode is not None:
            try:
                os.fchmod(fd, mode)  # exactly mode, whatever the umask
            except BaseException:
                os.close(fd)
                temp.unlink(missing_ok=True)
                raise
        return fd, temp
