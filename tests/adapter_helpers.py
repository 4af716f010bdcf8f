"""Shared by the adapter tests: contract-shaped source documents and adapter runs."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from tests.daemon_helpers import ROOT, make_record

STEP = timedelta(minutes=5)


def contract_docs(
    servers: int, steps: int, end: datetime, step: timedelta = STEP, iso: bool = False
) -> list[dict[str, Any]]:
    """One contract document per server per step, the last step at end, oldest first;
    the timestamp is a datetime (as MongoDB holds it) or, with iso, an ISO string."""
    docs = []
    for k in range(steps):
        at = end - (steps - 1 - k) * step
        for s in range(servers):
            doc = make_record(f"srv{s:03d}", int(at.timestamp()))
            doc["timestamp"] = at.isoformat().replace("+00:00", "Z") if iso else at
            docs.append(doc)
    return docs


def now_step() -> datetime:
    """The start of the current 5-minute step, minus one step (safely in the past)."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    return now - timedelta(seconds=now.timestamp() % 300) - STEP


def write_config(path: Path, body: dict[str, Any]) -> Path:
    path.write_text(json.dumps(body))
    return path


def run_adapter(
    script: str, *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess:
    """Run adapters/<script> with args; its completed process (text output)."""
    command = [sys.executable, f"adapters/{script}", *args]
    return subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def start_adapter(script: str, *args: str, env: dict[str, str], log: Path) -> subprocess.Popen:
    command = [sys.executable, f"adapters/{script}", *args]
    with open(log, "ab") as out:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=out)
