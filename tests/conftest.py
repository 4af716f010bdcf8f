"""Shared fixtures: small contract-valid fleets for fast tests."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

import data_contract as dc


def synthetic_fleet(n_servers: int = 4, days: float = 3.0, seed: int = 0) -> pd.DataFrame:
    """A tiny gap-free contract-valid frame with a daily cycle: simple, exact test data.

    Tests of realistic behaviour use fleet.generate.generate_fleet instead.
    """
    rng = np.random.default_rng(seed)
    steps = int(days * 288)
    ts = pd.date_range("2025-01-06", periods=steps, freq="5min", tz="UTC")
    frames = []
    for i in range(n_servers):
        daily = np.sin(2 * np.pi * np.arange(steps) / 288)
        user = np.clip(30 + 15 * daily + rng.normal(0, 3, steps), 0, 70)
        frame = pd.DataFrame({"timestamp": ts, "server_name": f"ppgen{i:03d}"})
        frame["state"] = "healthy"
        frame["cpu_user_pct"] = user
        frame["cpu_sys_pct"] = 5.0
        frame["cpu_iowait_pct"] = 1.0
        frame["cpu_idle_pct"] = 100 - user - 6.0
        frame["java_cpu_pct"] = user / 2
        frame["mem_used_pct"] = np.clip(50 + 10 * daily + rng.normal(0, 2, steps), 0, 100)
        frame["swap_used_pct"] = 0.0
        frame["disk_usage_pct"] = np.linspace(40, 45, steps)
        frame["net_in_mb_s"] = np.abs(10 + 5 * daily)
        frame["net_out_mb_s"] = np.abs(8 + 4 * daily)
        frame["back_close_wait"] = rng.poisson(2, steps)
        frame["front_close_wait"] = rng.poisson(1, steps)
        frame["load_average"] = user / 10
        frame["uptime_days"] = (np.arange(steps) // 288 + 10).astype(np.int64)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


@pytest.fixture
def small_fleet() -> pd.DataFrame:
    """4 servers x 3 days at 5-minute steps, valid under the contract."""
    frame = synthetic_fleet()
    assert dc.validate_schema(frame) == (True, [])
    return frame


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Tiny models: one torch thread is fastest, and immune to a busy second core."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
