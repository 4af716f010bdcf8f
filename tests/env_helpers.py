"""An .env file the test process may not read, as a root-owned mode-600 file is for the
user a service runs as (after `sudo make demo`)."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import dotenv.main
import pytest


def unreadable_env(path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Write path, a .env holding a key, whose open() fails with EACCES: for root too,
    who would read a chmod 000 file anyway."""
    path.write_text("TFT_API_KEY=secret-value-0123456789\n")
    real_open = open

    def refusing_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        if Path(file) == path:
            raise PermissionError(errno.EACCES, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(dotenv.main, "open", refusing_open, raising=False)
    return path
