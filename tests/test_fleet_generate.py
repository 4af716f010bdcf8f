"""Tests of the generated fleet (fleet.generate): the contract, realism of the metrics,
daily and weekly cycles, incidents and reboots, metadata, and validation before writing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import data_contract as dc
from fleet.events import Incident
from fleet.generate import Fleet, generate_fleet, write_fleet
from tests.fleet_helpers import STEP, server_rows


@pytest.fixture(scope="module")
def fleet() -> Fleet:
    return generate_fleet(n_servers=20, days=14, seed=11)


def _closed(fleet: Fleet, kind: str) -> list[Incident]:
    return [i for i in fleet.incidents if i.kind == kind and i.end is not None]


def test_frame_follows_the_contract(fleet: Fleet) -> None:
    frame = fleet.frame
    assert dc.validate_schema(frame) == (True, [])
    assert list(frame.columns) == list(dc.REQUIRED_COLUMNS)
    assert str(frame["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert pd.api.types.is_string_dtype(frame["server_name"])
    assert pd.api.types.is_string_dtype(frame["state"])
    for col in dc.INT_COLUMNS:
        assert frame[col].dtype == np.int64, col
    for col in set(dc.METRIC_COLUMNS) - set(dc.INT_COLUMNS):
        assert frame[col].dtype in (np.float64, np.float32), col
    assert frame.index.equals(pd.RangeIndex(len(frame)))
    ordered = frame.sort_values(["server_name", "timestamp"], kind="stable", ignore_index=True)
    pd.testing.assert_frame_equal(frame, ordered)
    assert set(frame["state"]) <= set(dc.VALID_STATES) - {"offline"}


def test_same_seed_same_fleet_other_seed_differs() -> None:
    first = generate_fleet(n_servers=8, days=2, seed=5)
    again = generate_fleet(n_servers=8, days=2, seed=5)
    other = generate_fleet(n_servers=8, days=2, seed=6)
    pd.testing.assert_frame_equal(first.frame, again.frame)
    assert first.incidents == again.incidents
    assert first.servers == other.servers  # names do not depend on the seed
    assert not np.allclose(first.frame["cpu_user_pct"][:500], other.frame["cpu_user_pct"][:500])


def test_metrics_are_consistent(fleet: Fleet) -> None:
    f = fleet.frame
    parts = f[["cpu_user_pct", "cpu_sys_pct", "cpu_iowait_pct", "cpu_idle_pct"]].sum(axis=1)
    np.testing.assert_allclose(parts, 100.0, atol=1e-9)
    assert (f["java_cpu_pct"] <= f["cpu_user_pct"] + f["cpu_sys_pct"] + 1e-9).all()
    assert (f.loc[f["swap_used_pct"] > 5, "mem_used_pct"] > 82).all()
    assert (f.loc[f["mem_used_pct"] < 70, "swap_used_pct"] < 2).all()
    by_profile = f.groupby(f["server_name"].map(fleet.servers))
    java_share = by_profile["java_cpu_pct"].sum() / by_profile["cpu_user_pct"].sum()
    assert java_share[["ml_compute", "etl_ingest", "risk_analytics"]].min() > 0.6
    assert java_share["database"] < 0.2
    load_vs_cpu = np.corrcoef(100 - f["cpu_idle_pct"], f["load_average"] / f["load_average"].max())
    assert load_vs_cpu[0, 1] > 0.5


def test_daily_and_weekly_cycles(fleet: Fleet) -> None:
    web = fleet.frame[fleet.frame["server_name"].map(fleet.servers) == "web_api"]
    ts, busy = web["timestamp"], 100 - web["cpu_idle_pct"]
    weekday, hour = ts.dt.dayofweek < 5, ts.dt.hour

    def mean(days: pd.Series, first: int, last: int) -> float:
        return busy[days & hour.between(first, last)].mean()

    assert mean(weekday, 9, 11) > 1.8 * mean(weekday, 1, 4)  # daily cycle
    assert mean(weekday, 9, 11) > 1.5 * mean(~weekday, 9, 11)  # quieter weekends
    spike_weekday = mean(weekday, 9, 11) / mean(weekday, 14, 16)
    spike_weekend = mean(~weekday, 9, 11) / mean(~weekday, 14, 16)
    assert spike_weekday > spike_weekend + 0.15  # the morning spike is a weekday one


def _driven_states_agree(f: pd.DataFrame) -> float:
    driven = f[f["state"].isin(["healthy", "heavy_load", "idle", "morning_spike"])]
    feats = dc.time_features(driven["timestamp"])
    expected = dc.determine_state(
        100 - driven["cpu_idle_pct"],
        driven["mem_used_pct"],
        feats["hour"],
        feats["is_business_hours"],
    )
    return float((driven["state"].to_numpy() == expected).mean())


def test_metric_driven_states_match_determine_state(fleet: Fleet) -> None:
    raw = generate_fleet(n_servers=20, days=3, seed=11, tick_seconds=None).frame
    assert _driven_states_agree(raw) == 1.0
    f = fleet.frame  # aggregated rows: the state is the step's last tick's, as in the daemon
    assert _driven_states_agree(f) > 0.995
    assert {"healthy", "morning_spike", "heavy_load", "critical_issue", "recovery"} <= set(
        f["state"]
    )
    maintenance = f[f["state"] == "maintenance"]
    assert len(maintenance) > 0
    assert (100 - maintenance["cpu_idle_pct"]).mean() < (100 - f["cpu_idle_pct"]).mean() / 2


def test_offline_steps_have_no_rows_and_metadata_lists_incidents(fleet: Fleet) -> None:
    f = fleet.frame
    steps = 14 * 288
    assert len(f) < 20 * steps
    gaps = f.groupby("server_name")["timestamp"].diff().dropna()
    assert (gaps >= STEP).all() and (gaps > STEP).any()
    for crash in _closed(fleet, "crash"):
        rows = server_rows(f, crash.server).loc[crash.start : crash.end - pd.Timedelta(1)]
        assert rows.empty, crash
    meta = json.loads(json.dumps(fleet.metadata()))
    assert meta["rows"] == len(f) and meta["n_servers"] == 20 and meta["seed"] == 11
    assert meta["contract_version"] == dc.CONTRACT_VERSION
    assert sorted(sum(meta["profiles"].values(), [])) == sorted(fleet.servers)
    assert meta["incidents"] == [i.as_dict() for i in fleet.incidents]
    kinds = {i["kind"] for i in meta["incidents"]}
    assert {"memory_leak", "disk_fill", "load_ramp", "crash"} <= kinds
    first = meta["incidents"][0]
    assert pd.Timestamp(first["start"]) == fleet.incidents[0].start


def test_memory_leak_is_visible_hours_ahead(fleet: Fleet) -> None:
    leaks = _closed(fleet, "memory_leak")
    assert len(leaks) >= 3
    rises = []
    for leak in leaks:
        mem = server_rows(fleet.frame, leak.server)["mem_used_pct"]
        last_hour = mem.loc[leak.end - pd.Timedelta("1h") : leak.end - pd.Timedelta(1)]
        before = mem.loc[leak.end - pd.Timedelta("3.5h") : leak.end - pd.Timedelta("3h")]
        rises.append(last_hour.mean() - before.mean())
        assert last_hour.max() > 95, leak
        after = server_rows(fleet.frame, leak.server).loc[leak.end :]
        assert after["uptime_days"].iloc[0] == 0 and after["state"].iloc[0] == "recovery", leak
    assert min(rises) > 3 and np.median(rises) > 10, rises


def test_disk_fill_and_load_ramp_build_up(fleet: Fleet) -> None:
    for fill in _closed(fleet, "disk_fill"):
        disk = server_rows(fleet.frame, fill.server)["disk_usage_pct"]
        assert disk.loc[: fill.end - pd.Timedelta(1)].iloc[-1] > 95, fill
        assert disk.loc[fill.start :].iloc[0] < 95, fill
        assert disk.loc[fill.end :].iloc[0] < 90, fill
    ramps = _closed(fleet, "load_ramp")
    assert ramps
    for ramp in ramps:
        busy = 100 - server_rows(fleet.frame, ramp.server)["cpu_idle_pct"]
        assert busy.loc[ramp.start : ramp.end].max() > 95, ramp


def test_uptime_grows_and_resets_after_reboots(fleet: Fleet) -> None:
    f = fleet.frame
    assert f["uptime_days"].between(0, 365).all()
    by_server = f.groupby("server_name")
    change = by_server["uptime_days"].diff()
    gap = by_server["timestamp"].diff()
    resets = change < 0
    assert resets.sum() >= 3
    assert (f.loc[resets, "uptime_days"] == 0).all()
    assert (gap[resets] > STEP).all()  # a reboot is an offline gap
    assert change[~resets].dropna().isin([0, 1]).all()
    never_rebooted = by_server["uptime_days"].agg(lambda u: u.is_monotonic_increasing)
    span = by_server["uptime_days"].agg(lambda u: u.iloc[-1] - u.iloc[0])
    assert (span[never_rebooted] >= 13).all()


def test_invalid_frame_is_not_written(tmp_path: Path) -> None:
    fleet = generate_fleet(n_servers=2, days=0.1, seed=1)
    fleet.frame.loc[0, "cpu_idle_pct"] = -1.0
    with pytest.raises(dc.ContractError, match="cpu_idle_pct"):
        write_fleet(fleet, tmp_path)
    assert not (tmp_path / "server_metrics.parquet").exists()
