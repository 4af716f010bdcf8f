"""Tests of FleetSimulator (fleet.simulator): server names, incremental advance that does
not depend on chunking, and forced incidents."""

from __future__ import annotations

import re

import pandas as pd
import pytest

import data_contract as dc
from fleet.profiles import PROFILES
from fleet.simulator import DEFAULT_START, FleetSimulator
from tests.fleet_helpers import NAME_PATTERNS, STEP, server_rows


@pytest.mark.parametrize("n_servers", [1, 7, 20, 100])
def test_server_names_follow_the_profile_patterns(n_servers: int) -> None:
    servers = FleetSimulator(n_servers=n_servers).servers
    assert FleetSimulator(n_servers=n_servers, mix="classic").servers == servers
    assert len(servers) == n_servers
    for name, profile in servers.items():
        assert re.fullmatch(NAME_PATTERNS[profile], name), (name, profile)
    if n_servers >= 7:
        assert set(servers.values()) == {p.name for p in PROFILES}
    if n_servers == 100:
        counts = pd.Series(servers).value_counts().to_dict()
        assert counts == {
            "ml_compute": 25,
            "web_api": 25,
            "database": 15,
            "etl_ingest": 10,
            "risk_analytics": 10,
            "generic": 10,
            "conductor": 5,
        }
    assert FleetSimulator(n_servers=n_servers, seed=99).servers == servers


def test_advance_continues_without_overlap() -> None:
    sim = FleetSimulator(n_servers=9, seed=3)
    first, second = sim.advance(150), sim.advance(150)
    assert first["timestamp"].max() < second["timestamp"].min()
    assert second["timestamp"].min() == first["timestamp"].max() + STEP
    assert sim.now == pd.Timestamp(DEFAULT_START) + 300 * STEP
    joined = pd.concat([first, second]).sort_values(["server_name", "timestamp"])
    whole = FleetSimulator(n_servers=9, seed=3).advance(300)
    pd.testing.assert_frame_equal(joined.reset_index(drop=True), whole)
    assert dc.validate_schema(sim.advance(1)) == (True, [])


def test_force_incident_starts_a_visible_incident() -> None:
    sim = FleetSimulator(n_servers=7, seed=2)
    sim.advance(12)
    incident = sim.force_incident("ppdb001", "disk_fill")
    assert (incident.server, incident.kind, incident.start) == ("ppdb001", "disk_fill", sim.now)
    disk = server_rows(sim.advance(6 * 12), "ppdb001")["disk_usage_pct"]
    assert disk.iloc[-1] > disk.iloc[0] + 5
    with pytest.raises(KeyError):
        sim.force_incident("nope001", "memory_leak")
    with pytest.raises(ValueError):
        sim.force_incident("ppdb001", "meteor")
    with pytest.raises(ValueError):
        sim.advance(-1)


def test_aggregated_realistic_advance_does_not_depend_on_chunking() -> None:
    def sim() -> FleetSimulator:
        return FleetSimulator(n_servers=12, seed=3, mix="realistic", tick_seconds=5)

    first = sim()
    parts = [first.advance(k) for k in (100, 250, 350)]
    joined = pd.concat(parts).sort_values(["server_name", "timestamp"], kind="stable")
    whole = sim().advance(700)
    pd.testing.assert_frame_equal(joined.reset_index(drop=True), whole)
