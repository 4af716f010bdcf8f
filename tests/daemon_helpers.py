"""Shared helpers for the daemon tests: contract records and an in-process app client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from typing import Any

import httpx
import orjson
from fastapi import FastAPI

import data_contract as dc

KEY = "test-key-0123456789abcdef"
AUTH = {"X-API-Key": KEY}
T0 = 1_750_000_200  # a 5-minute step boundary (2025-06-15T15:10:00Z)


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
