"""Backtest scoring and the CloudWatch importer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import data_contract as dc
from bench import cloudwatch, scoring


def _panel(series: np.ndarray) -> scoring.Panel:
    values = np.zeros((1, len(series), len(dc.METRIC_COLUMNS)))
    values[0, :, 0] = series
    return scoring.Panel(["s"], pd.Timestamp("2025-01-01", tz="UTC"), 300, values)


def test_dense_panel_keeps_gaps(small_fleet: pd.DataFrame) -> None:
    frame = small_fleet.drop(index=[10, 11]).reset_index(drop=True)
    panel = scoring.dense_panel(frame)
    assert panel.values.shape == (4, 864, 14)
    assert np.isnan(panel.values[0, 10:12]).all() and not np.isnan(panel.values[0, 12]).any()
    assert panel.values[1, 5, 0] == small_fleet.loc[864 + 5, "cpu_user_pct"]


def test_baselines_use_yesterday_and_last_value() -> None:
    series = np.arange(600, dtype=float)
    panel = _panel(series)
    pairs = np.array([[0, 300]])
    assert scoring.actuals(panel, pairs, 3)[0, :, 0].tolist() == [301, 302, 303]
    assert scoring.seasonal_naive(panel, pairs, 3)[0, :, 0].tolist() == [13, 14, 15]
    assert scoring.last_value(panel, pairs, 3)[0, :, 0].tolist() == [300, 300, 300]


def test_origins_need_full_encoder_and_horizon() -> None:
    series = np.arange(400, dtype=float)
    series[150] = np.nan
    pairs = scoring.origins(_panel(series), first=0, every=1, encoder=100, horizon=10)
    t0 = pairs[:, 1]
    assert t0.min() == 99 and t0.max() == 389 and len(t0) == 51 + 140
    assert not ((t0 >= 150) & (t0 < 250)).any()


def test_mase_and_coverage() -> None:
    rng = np.random.default_rng(0)
    series = 50 + 10 * np.sin(np.arange(1000) * 2 * np.pi / 288) + rng.normal(0, 1, 1000)
    panel = _panel(series)
    scale = scoring.mase_scale(panel, before=600)
    assert scale[0, 0] == pytest.approx(np.mean(np.abs(series[288:600] - series[:312])))
    assert np.isnan(scale[0, 1])  # constant column is not scored
    truth = np.full((2, 6, 14), 10.0)
    point = np.full((2, 6, 14), 12.0)
    mae, mase = scoring.score(truth, point, np.full((2, 14), 4.0), h=6)
    assert mae[0] == 2.0 and mase[0] == 0.5
    inside = scoring.coverage(truth, point - 3, point + 3, h=6)
    outside = scoring.coverage(truth, point - 1, point + 1, h=6)
    assert inside[0] == 1.0 and outside[0] == 0.0


def test_cloudwatch_import(tmp_path) -> None:
    csv = "timestamp,value\n2014-02-14 14:27:00,10.5\n2014-02-14 14:32:00,99.0\n"
    (tmp_path / "ec2_cpu_utilization_x.csv").write_text(csv)
    (tmp_path / "ec2_network_in_y.csv").write_text("timestamp,value\n2014-02-14 14:30:00,3e8\n")
    (tmp_path / "elb_request_count_z.csv").write_text(csv)
    frame, measured = cloudwatch.load_cloudwatch(tmp_path)
    assert measured == {
        "cw-ec2_cpu_utilization_x": "cpu_user_pct",
        "cw-ec2_network_in_y": "net_in_mb_s",
    }
    assert dc.validate_schema(frame) == (True, [])
    cpu = frame[frame.server_name == "cw-ec2_cpu_utilization_x"]
    assert cpu["timestamp"].dt.minute.tolist() == [25, 30]
    assert cpu["cpu_idle_pct"].tolist() == [89.5, 1.0]
    assert cpu["state"].tolist() == ["healthy", "critical_issue"]
    net = frame[frame.server_name == "cw-ec2_network_in_y"]
    assert net["net_in_mb_s"].tolist() == [1.0]


def test_cloudwatch_import_refuses_empty_folder(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="no CloudWatch"):
        cloudwatch.load_cloudwatch(tmp_path)
