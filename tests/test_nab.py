"""The NAB CloudWatch importer (training/nab.py)."""

from __future__ import annotations

import pytest

import data_contract as dc
from training import nab


def test_cloudwatch_import(tmp_path) -> None:
    csv = "timestamp,value\n2014-02-14 14:27:00,10.5\n2014-02-14 14:32:00,99.0\n"
    (tmp_path / "ec2_cpu_utilization_x.csv").write_text(csv)
    (tmp_path / "ec2_network_in_y.csv").write_text("timestamp,value\n2014-02-14 14:30:00,3e8\n")
    (tmp_path / "elb_request_count_z.csv").write_text(csv)
    frame, measured = nab.load_cloudwatch(tmp_path)
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
        nab.load_cloudwatch(tmp_path)
