"""The training corpus: real series moved by whole weeks next to the generated fleet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import data_contract as dc
from tests.conftest import synthetic_fleet
from tests.test_azure import write_trace
from training import corpus
from training.corpus import build_corpus

WEEK = pd.Timedelta(days=7)


def test_real_series_keep_their_calendar_and_end_with_the_fleet() -> None:
    fleet = synthetic_fleet(n_servers=2, days=21)
    real = synthetic_fleet(n_servers=1, days=3).assign(server_name="cw-real")
    real["timestamp"] = real["timestamp"] - pd.Timedelta(days=3650)  # ten years earlier
    out = build_corpus(fleet, [(real, 2)])
    assert dc.validate_schema(out) == (True, [])
    for name, weeks_back in (("cw-real", 0), ("cw-real~2", 1)):
        moved = out[out.server_name == name]["timestamp"].reset_index(drop=True)
        shift = moved - real["timestamp"].reset_index(drop=True)
        assert (shift % WEEK == pd.Timedelta(0)).all()  # same hour and weekday
        gap = fleet["timestamp"].max() - moved.max()
        assert WEEK * weeks_back <= gap < WEEK * (weeks_back + 1)
    assert out.server_name.nunique() == 4


def _inputs(tmp_path: Path) -> list[str]:
    """Arguments naming a small fleet, a one-CSV NAB folder and a 4-VM Azure trace."""
    synthetic_fleet(n_servers=2, days=21).to_parquet(tmp_path / "fleet.parquet")
    stamps = pd.date_range("2014-02-14", periods=600, freq="5min")
    nab_dir = tmp_path / "nab"
    nab_dir.mkdir()
    values = 20 + 10 * np.sin(np.arange(600) * 2 * np.pi / 288)
    pd.DataFrame({"timestamp": stamps, "value": values}).to_csv(
        nab_dir / "ec2_cpu_utilization_a.csv", index=False
    )
    azure_dir = write_trace(tmp_path / "azure", vms=4, days=3)
    paths = {"--fleet": tmp_path / "fleet.parquet", "--out": tmp_path / "out.parquet"}
    paths |= {"--nab-dir": nab_dir, "--azure-dir": azure_dir}
    return [str(word) for pair in paths.items() for word in pair]


@pytest.mark.parametrize(
    ("flags", "azure_servers"),
    [([], 6), (["--azure-copies", "2"], 12), (["--no-azure"], 0)],
)
def test_the_azure_part_by_flag(tmp_path: Path, flags: list[str], azure_servers: int) -> None:
    assert corpus.main([*_inputs(tmp_path), "--nab-copies", "2", *flags]) == 0
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert dc.validate_schema(out) == (True, [])
    names = out["server_name"].drop_duplicates()
    assert names.str.startswith("azure-").sum() == azure_servers  # 3 training VMs x avg, max
    assert set(names[names.str.startswith("cw-")]) == {
        "cw-ec2_cpu_utilization_a",
        "cw-ec2_cpu_utilization_a~2",
    }
    fleet_end = pd.read_parquet(tmp_path / "fleet.parquet")["timestamp"].max()
    for name, rows in out[out.server_name.str.startswith("azure-")].groupby("server_name"):
        weeks_back = 1 if name.endswith("~2") else 0
        assert WEEK * weeks_back <= fleet_end - rows["timestamp"].max() < WEEK * (weeks_back + 1)
        first = rows["timestamp"].min()  # the trace's assumed start, moved by whole weeks
        assert (first.day_name(), first.hour, first.minute) == ("Monday", 0, 0)
