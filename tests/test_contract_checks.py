"""Frame validation (contract/checks.py, through data_contract): every broken rule named
with the column, sample values and rows; ContractError lists them all."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import data_contract as dc
from tests.contract_helpers import only_error as _only_error


def test_valid_frame_passes(small_fleet: pd.DataFrame) -> None:
    assert dc.validate_schema(small_fleet) == (True, [])
    dc.require_valid(small_fleet)


def test_missing_column(small_fleet: pd.DataFrame) -> None:
    error = _only_error(small_fleet.drop(columns=["swap_used_pct", "load_average"]))
    assert "missing required column(s): swap_used_pct, load_average" in error


def test_deprecated_column(small_fleet: pd.DataFrame) -> None:
    error = _only_error(small_fleet.assign(cpu_pct=50.0))
    assert error.startswith("cpu_pct: deprecated column") and "cpu_user_pct" in error


def test_unknown_state_names_value_and_rows(small_fleet: pd.DataFrame) -> None:
    frame = small_fleet.copy()
    frame.loc[[3, 7], "state"] = "exploded"
    error = _only_error(frame)
    assert "state: invalid value(s) 'exploded'" in error
    assert "2 row(s), first at row(s) 3, 7" in error and "healthy" in error


@pytest.mark.parametrize("value", [-0.5, 100.5])
def test_percent_out_of_range(small_fleet: pd.DataFrame, value: float) -> None:
    frame = small_fleet.copy()
    frame.loc[5, "mem_used_pct"] = value
    error = _only_error(frame)
    assert error.startswith("mem_used_pct:") and str(value) in error and "row(s) 5" in error


def test_negative_counter_and_rate(small_fleet: pd.DataFrame) -> None:
    frame = small_fleet.copy()
    frame.loc[0, "back_close_wait"] = -3
    frame.loc[1, "net_in_mb_s"] = -1.0
    ok, errors = dc.validate_schema(frame)
    assert not ok
    assert any(e.startswith("back_close_wait: negative value(s) -3") for e in errors)
    assert any(e.startswith("net_in_mb_s: negative value(s) -1.0") for e in errors)


def test_nan_and_infinite(small_fleet: pd.DataFrame) -> None:
    frame = small_fleet.copy()
    frame.loc[2, "cpu_user_pct"] = np.nan
    frame.loc[4, "load_average"] = np.inf
    ok, errors = dc.validate_schema(frame)
    assert not ok
    assert "cpu_user_pct: NaN or infinite values in 1 row(s), first at row(s) 2" in errors
    assert "load_average: NaN or infinite values in 1 row(s), first at row(s) 4" in errors


def test_non_datetime_timestamp(small_fleet: pd.DataFrame) -> None:
    frame = small_fleet.assign(timestamp=small_fleet["timestamp"].astype(str))
    assert _only_error(frame).startswith("timestamp: must be a datetime dtype")


def test_missing_timestamp(small_fleet: pd.DataFrame) -> None:
    frame = small_fleet.copy()
    frame.loc[9, "timestamp"] = pd.NaT
    assert _only_error(frame) == "timestamp: missing values (NaT) in 1 row(s), first at row(s) 9"


@pytest.mark.parametrize("name", ["", "   ", None])
def test_empty_server_name(small_fleet: pd.DataFrame, name: str | None) -> None:
    frame = small_fleet.copy()
    frame.loc[6, "server_name"] = name
    assert _only_error(frame).startswith("server_name: empty or missing name in 1 row(s)")


def test_wrong_dtypes(small_fleet: pd.DataFrame) -> None:
    frame = small_fleet.assign(uptime_days=small_fleet["uptime_days"] + 0.5)
    assert _only_error(frame).startswith("uptime_days: must be an integer dtype, got float64")
    frame = small_fleet.assign(cpu_sys_pct="high")
    assert _only_error(frame).startswith("cpu_sys_pct: must be numeric (float)")


def test_uptime_above_365(small_fleet: pd.DataFrame) -> None:
    frame = small_fleet.copy()
    frame.loc[0, "uptime_days"] = 400
    assert "outside [0, 365]" in _only_error(frame)


def test_empty_frame_rejected(small_fleet: pd.DataFrame) -> None:
    assert _only_error(small_fleet.iloc[:0]) == "frame has no rows"


def test_require_valid_raises_with_every_error(small_fleet: pd.DataFrame) -> None:
    frame = small_fleet.assign(latency_ms=1.0, swap_used_pct=-1.0)
    with pytest.raises(dc.ContractError) as info:
        dc.require_valid(frame, source="training/x.parquet")
    assert len(info.value.errors) == 2
    assert str(info.value).startswith("training/x.parquet breaks data contract 2.0.0")


def test_frames_refuse_timestamps_outside_the_range(small_fleet: pd.DataFrame) -> None:
    frame = small_fleet.copy()
    frame.loc[7, "timestamp"] = pd.Timestamp("1970-01-01T00:00:00Z")
    error = _only_error(frame)
    assert error.startswith("timestamp: ") and "first at row(s) 7" in error
    assert "2000-01-01T00:00:00Z" in error
    naive = small_fleet.assign(timestamp=small_fleet["timestamp"].dt.tz_localize(None))
    assert dc.validate_schema(naive) == (True, [])
    naive.loc[2, "timestamp"] = pd.Timestamp("2200-01-01")
    assert "first at row(s) 2" in _only_error(naive)
