"""Shared helpers for the daemon tests: contract records and an in-process app client."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import orjson
from fastapi import FastAPI

import data_contract as dc

ROOT = Path(__file__).resolve().parents[1]
KEY = "test-key-0123456789abcdef"
AUTH = {"X-API-Key": KEY}
T0 = 1_750_000_200  # a 5-minute step boundary (2025-06-15T15:10:00Z)
NOW = T0 + 289 * 300 + 10  # just after a history of 289 steps from T0 (its last step open)


class Clock:
    """A settable wall clock for the daemon (create_app(clock=...), InferenceService),
    so that clock-skew checks, steps closed by the clock and silence are deterministic."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_record(server: str, seconds: int, **overrides: Any) -> dict[str, Any]:
    """A valid, quiet contract record at epoch seconds."""
    stamp = datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    record: dict[str, Any] = {"timestamp": stamp, "server_name": server, "state": "healthy"}
    for spec in dc.METRICS:
        record[spec.name] = 0 if spec.kind == "int" else 10.0
    record.update(cpu_idle_pct=70.0, cpu_iowait_pct=1.0, swap_used_pct=0.0)
    record.update(mem_used_pct=50.0, disk_usage_pct=40.0, uptime_days=30)
    record.update(overrides)
    return record


def steps_body(servers: list[str], n_steps: int, start: int = T0, **overrides: Any) -> bytes:
    """One record per server per 5-minute step."""
    records = [
        make_record(server, start + 300 * k, **overrides)
        for k in range(n_steps)
        for server in servers
    ]
    return orjson.dumps(records)


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan running, and a client talking to it in-process."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://daemon") as client:
            yield client


# --- real processes ---------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_daemon(port: int, state_dir: Path, log: Path, **env: str) -> subprocess.Popen:
    environment = {**os.environ, "TFT_API_KEY": KEY, "TFT_COALESCE_S": "0.2", **env}
    command = [sys.executable, "tft_inference_daemon.py", "--port", str(port)]
    command += ["--state-dir", str(state_dir), "--model", "models/latest"]
    with open(log, "ab") as out:
        return subprocess.Popen(command, cwd=ROOT, env=environment, stdout=out, stderr=out)


def wait_for(condition: Callable[[], Any], timeout: float, what: str, log: Path) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = condition()
        except httpx.TransportError:
            result = None
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; daemon log:\n{log.read_text()[-3000:]}")
