"""generate_api_key.py: creates .env safely and never leaks or clobbers a key."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

import generate_api_key as gak


def _run(tmp_path: Path, *args: str) -> None:
    env, example = tmp_path / ".env", tmp_path / ".env.example"
    assert gak.main(["--env-file", str(env), "--example", str(example), *args]) == 0


def _key(tmp_path: Path) -> str | None:
    return gak.existing_key((tmp_path / ".env").read_text())


def test_creates_env_from_example_with_mode_600(tmp_path: Path, capsys) -> None:
    (tmp_path / ".env.example").write_text("# comment\nTFT_API_KEY=\nTFT_OTHER=1\n")
    _run(tmp_path)
    env = tmp_path / ".env"
    text = env.read_text()
    key = _key(tmp_path)
    assert key is not None and len(key) == 64 and int(key, 16) >= 0
    assert "# comment" in text and "TFT_OTHER=1" in text and text.count("TFT_API_KEY=") == 1
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    out = capsys.readouterr().out
    assert str(env) in out and key not in out


def test_never_overwrites_without_force(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("TFT_API_KEY=keep-me\n")
    _run(tmp_path)
    assert _key(tmp_path) == "keep-me"
    _run(tmp_path, "--force")
    assert _key(tmp_path) not in (None, "keep-me")


def test_show_prints_the_key(tmp_path: Path, capsys) -> None:
    _run(tmp_path, "--show")
    assert _key(tmp_path) in capsys.readouterr().out


def test_keys_are_random() -> None:
    assert gak.new_key() != gak.new_key()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "TFT_API_KEY=k\n"),
        ("A=1", "A=1\nTFT_API_KEY=k\n"),
        ("TFT_API_KEY=\nB=2\n", "TFT_API_KEY=k\nB=2\n"),
        ("export TFT_API_KEY='old'\n", "TFT_API_KEY=k\n"),
    ],
)
def test_with_key(text: str, expected: str) -> None:
    assert gak.with_key(text, "k") == expected
