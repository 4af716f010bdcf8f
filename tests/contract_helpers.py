"""Shared by the contract's tests: the spec's example record and a frame's only error."""

from __future__ import annotations

import pandas as pd

import data_contract as dc

SPEC_RECORD = {
    "timestamp": "2025-10-17T12:00:00Z",
    "server_name": "ppml0001",
    "state": "healthy",
    "cpu_user_pct": 65.4,
    "cpu_sys_pct": 12.3,
    "cpu_iowait_pct": 2.1,
    "cpu_idle_pct": 20.2,
    "java_cpu_pct": 45.0,
    "mem_used_pct": 85.2,
    "swap_used_pct": 0.0,
    "disk_usage_pct": 45.0,
    "net_in_mb_s": 25.3,
    "net_out_mb_s": 18.7,
    "back_close_wait": 0,
    "front_close_wait": 0,
    "load_average": 8.5,
    "uptime_days": 42.0,
}


def only_error(frame: pd.DataFrame) -> str:
    ok, errors = dc.validate_schema(frame)
    assert not ok and len(errors) == 1, errors
    return errors[0]
