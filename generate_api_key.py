"""Write a random 256-bit API key as TFT_API_KEY into .env (mode 600).

    python generate_api_key.py            # create .env from .env.example if absent, add a key
    python generate_api_key.py --force    # replace an existing key
    python generate_api_key.py --show     # also print the key

The file is the one every process reads (env_settings.env_file): TFT_ENV_FILE, else .env
in the working directory; --env-file names another.

The key itself is printed only with --show; nothing logs it.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import sys
from pathlib import Path

from durable import PRIVATE, write_atomically
from env_settings import env_file

ROOT = Path(__file__).resolve().parent
KEY_NAME = "TFT_API_KEY"
_KEY_LINE = re.compile(rf"^\s*(export\s+)?{KEY_NAME}\s*=(.*)$", re.MULTILINE)


def new_key() -> str:
    """A 256-bit random key as 64 hex characters."""
    return secrets.token_hex(32)


def existing_key(text: str) -> str | None:
    """The key set in .env text, or None when absent or empty."""
    match = _KEY_LINE.search(text)
    value = match.group(2).strip().strip("'\"") if match else ""
    return value or None


def with_key(text: str, key: str) -> str:
    """The .env text with TFT_API_KEY set to key (replacing the line, or appending one)."""
    line = f"{KEY_NAME}={key}"
    if _KEY_LINE.search(text):
        return _KEY_LINE.sub(line, text, count=1)
    return f"{text.rstrip(chr(10))}\n{line}\n" if text.strip() else f"{line}\n"


def write_private(path: Path, text: str) -> None:
    """Write durably with mode 600 (durable.write_atomically: a temporary file in the same
    folder, fsynced, renamed over path)."""
    write_atomically(path, text, mode=PRIVATE)


def ensure_key(env_file: Path, example: Path, force: bool = False) -> tuple[str, bool]:
    """Make sure env_file holds a key; returns (key, whether a new one was written)."""
    if env_file.exists():
        text = env_file.read_text(encoding="utf-8")
    else:
        text = example.read_text(encoding="utf-8") if example.exists() else ""
    current = existing_key(text)
    if current and not force:
        if env_file.exists():
            os.chmod(env_file, 0o600)
        return current, False
    key = new_key()
    write_private(env_file, with_key(text, key))
    return key, True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-file", type=Path, default=env_file())
    parser.add_argument("--example", type=Path, default=ROOT / ".env.example")
    parser.add_argument("--force", action="store_true", help="replace an existing key")
    parser.add_argument("--show", action="store_true", help="print the key")
    args = parser.parse_args(argv)
    key, written = ensure_key(args.env_file, args.example, args.force)
    if written:
        sys.stdout.write(f"Wrote a new {KEY_NAME} to {args.env_file} (mode 600)\n")
    else:
        sys.stdout.write(f"{KEY_NAME} already set in {args.env_file}; use --force to replace\n")
    if args.show:
        sys.stdout.write(f"{key}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
