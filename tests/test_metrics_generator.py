"""Tests of the generator's command line (metrics_generator.py): its three files, with the
rows and metadata of generate_fleet for the same flags."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

import data_contract as dc
import metrics_generator as mg
from fleet.generate import generate_fleet


def test_cli_writes_three_files(tmp_path: Path) -> None:
    out = tmp_path / "new" / "training"
    argv = ["--servers", "7", "--days", "1", "--step", "300", "--seed", "4", "--out", str(out)]
    assert mg.main(argv) == 0
    frame = pd.read_parquet(out / "server_metrics.parquet")
    assert dc.validate_schema(frame) == (True, [])
    expected = generate_fleet(n_servers=7, days=1, seed=4, mix="realistic")
    pd.testing.assert_frame_equal(frame, expected.frame, check_dtype=False)
    mapping = json.loads((out / "server_mapping.json").read_text())
    assert mapping == dc.create_server_mapping(frame["server_name"].unique())
    meta = json.loads((out / "metrics_metadata.json").read_text())
    assert meta == json.loads(json.dumps(expected.metadata()))
    assert meta["start"] == "2025-01-06T00:00:00+00:00" and meta["rows"] == len(frame)
    assert meta["mix"] == "realistic" and meta["tick_seconds"] == 5
    assert meta["aggregation"] == dc.AGGREGATION
    raw = tmp_path / "raw"
    assert mg.main([*argv[:-1], str(raw), "--mix", "classic", "--tick", "0"]) == 0
    expected = generate_fleet(n_servers=7, days=1, seed=4, tick_seconds=None)
    frame = pd.read_parquet(raw / "server_metrics.parquet")
    pd.testing.assert_frame_equal(frame, expected.frame, check_dtype=False)
