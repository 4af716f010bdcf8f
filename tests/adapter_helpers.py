"""Shared by the adapter tests: contract-shaped source documents and adapter runs."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from adapters import state
from adapters.base import Doc, Loop, new_totals
from adapters.config import AdapterSettings
from adapters.forward import DaemonUnavailable
from adapters.quarantine import Quarantine
from adapters.runner import AdapterSpec
from feedclient.outcomes import Counts
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


def one_ahead_then_five(end: datetime, iso: bool = False) -> tuple[list[dict], list[dict]]:
    """Issue 18's reproduction: one host's document 10 minutes ahead of end, and five
    documents of five other hosts 1..5 s after end (inserted after the first poll)."""
    ahead = contract_docs(servers=1, steps=1, end=end + timedelta(minutes=10), iso=iso)
    ahead[0]["server_name"] = "fast-clock"
    others = []
    for k in range(5):
        [doc] = contract_docs(servers=1, steps=1, end=end + timedelta(seconds=k + 1), iso=iso)
        others.append(doc | {"server_name": f"host{k}"})
    return ahead, others


def quarantined(tmp_path: Path) -> list[dict[str, Any]]:
    """The lines of adapter_loop's quarantine file."""
    path = tmp_path / "q.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def now_step() -> datetime:
    """The start of the current 5-minute step, minus one step (safely in the past)."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    return now - timedelta(seconds=now.timestamp() % 300) - STEP


def write_config(path: Path, body: dict[str, Any]) -> Path:
    path.write_text(json.dumps(body))
    return path


def start_adapter(script: str, *args: str, env: dict[str, str], log: Path) -> subprocess.Popen:
    command = [sys.executable, f"adapters/{script}", *args]
    with open(log, "ab") as out:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=out)


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


class Recorder:
    """A Loop.send that keeps what it was given (no daemon), or fails while down."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.down = False

    def __call__(self, records: list[dict[str, Any]]) -> Counts:
        if self.down and records:
            raise DaemonUnavailable("down")
        self.sent += records
        return new_totals(records=len(records), applied=len(records))


def keys(records: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(server, timestamp) of each record, in order."""
    return [(r["server_name"], r["timestamp"]) for r in records]


def adapter_loop(
    spec: AdapterSpec,
    config: Any,
    tmp_path: Path,
    send: Recorder,
    *,
    settings: AdapterSettings | None = None,
    backfill: timedelta = timedelta(days=2),
) -> Loop:
    """An adapter's loop on its real source, sending to send, its cursor in tmp_path (a
    second loop on the same tmp_path is the adapter restarted)."""
    path = tmp_path / "cursor.json"
    return Loop(
        source=spec.make_source(config, settings or AdapterSettings(_env_file=None)),
        mapper=spec.make_mapper(config),
        send=send,
        quarantine=Quarantine(tmp_path / "q.jsonl"),
        state_file=path,
        batch_size=config.batch_size,
        backfill=backfill,
        cursor=state.load(path),
    )
