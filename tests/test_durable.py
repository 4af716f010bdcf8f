"""durable.py: atomic, fsynced writes (mode 0600 for secrets), and the symlink swap."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

import durable


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_writes_bytes_text_or_a_writer_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    durable.write_atomically(target, b"one")
    assert target.read_bytes() == b"one"
    durable.write_atomically(target, "zwei \u00fc")
    assert target.read_text(encoding="utf-8") == "zwei \u00fc"
    durable.write_atomically(target, lambda out: out.write(b"three"))
    assert target.read_bytes() == b"three"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_private_files_get_mode_0600_whatever_the_umask(tmp_path: Path) -> None:
    target = tmp_path / ".env"
    target.write_text("old\n")
    target.chmod(0o644)
    old_umask = os.umask(0o000)
    try:
        durable.write_atomically(target, "TFT_API_KEY=x\n", mode=durable.PRIVATE)
    finally:
        os.umask(old_umask)
    assert _mode(target) == 0o600 and target.read_text() == "TFT_API_KEY=x\n"


def test_without_a_mode_the_umask_decides(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)
    try:
        durable.write_atomically(tmp_path / "cores.json", "{}\n")
    finally:
        os.umask(old_umask)
    assert _mode(tmp_path / "cores.json") == 0o644


def test_a_failed_write_leaves_the_old_file_intact(tmp_path: Path) -> None:
    target = tmp_path / "state.npz"
    target.write_bytes(b"old")

    def disk_full(out: object) -> None:
        out.write(b"half")  # type: ignore[attr-defined]
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        durable.write_atomically(target, disk_full, mode=durable.PRIVATE)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.npz"]  # no temporary left


def test_a_failed_rename_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "cursor.json"
    target.write_text("old")

    def refuse(*_: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(durable.os, "replace", refuse)
    with pytest.raises(PermissionError):
        durable.write_atomically(target, "new")
    assert target.read_text() == "old" and len(list(tmp_path.iterdir())) == 1


def test_fsync_directory_and_a_missing_directory(tmp_path: Path) -> None:
    durable.fsync_directory(tmp_path)
    with pytest.raises(FileNotFoundError):
        durable.write_atomically(tmp_path / "missing" / "file", "x")


def test_point_link_swaps_a_symlink_or_writes_a_text_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    link = tmp_path / "latest"
    durable.point_link(link, "a")
    assert link.is_symlink() and os.readlink(link) == "a"
    durable.point_link(link, "b")
    assert os.readlink(link) == "b" and sorted(p.name for p in tmp_path.iterdir()) == [
        "a",
        "b",
        "latest",
    ]

    def no_symlinks(self: Path, *args: object, **kwargs: object) -> None:
        raise OSError("symlinks not supported")

    monkeypatch.setattr(Path, "symlink_to", no_symlinks)
    durable.point_link(link, "a")
    assert not link.is_symlink() and link.read_text() == "a\n"


def test_publish_directory_renames_a_finished_directory(tmp_path: Path) -> None:
    temp = tmp_path / ".model.tmp"
    temp.mkdir()
    (temp / "config.json").write_text("{}")
    durable.publish_directory(temp, tmp_path / "model")
    assert not temp.exists() and (tmp_path / "model" / "config.json").read_text() == "{}"
