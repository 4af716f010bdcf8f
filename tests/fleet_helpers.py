"""Helpers shared by the tests of the simulated fleet (tests/test_fleet_*.py)."""

from __future__ import annotations

import pandas as pd

from fleet.simulator import FleetSimulator

STEP = pd.Timedelta(seconds=300)
DAY = 288  # steps of 5 minutes
NAME_PATTERNS = {
    "ml_compute": r"ppml\d{4}",
    "database": r"ppdb\d{3}",
    "web_api": r"ppweb\d{3}",
    "conductor": r"ppcon\d{2}",
    "etl_ingest": r"ppetl\d{3}",
    "risk_analytics": r"pprisk\d{3}",
    "generic": r"ppgen\d{3}",
    "idle_vm": r"ppidle\d{3}",
    "batch_vm": r"ppbatch\d{3}",
    "cron_vm": r"ppcron\d{3}",
}


def server_rows(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """One server's rows, indexed by timestamp."""
    return frame[frame["server_name"] == name].set_index("timestamp")


def quiet(sim: FleetSimulator) -> FleetSimulator:
    """No incidents or maintenance: both sides see the same conditions, only noise differs."""
    sim.params.rates[:] = 0.0
    return sim
