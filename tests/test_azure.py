"""The Azure VM CPU importer and its split (training/azure.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import data_contract as dc
from training import azure

SHIPPED = azure.DEFAULT_DIR / azure.FILE_NAME
needs_dataset = pytest.mark.skipif(
    not SHIPPED.is_file(), reason=f"the Azure VM CPU sample is not at {SHIPPED}"
)


def write_trace(folder: Path, vms: int = 10, days: float = 3.0) -> Path:
    """A small trace in the shipped file's format: vm_id, step, cpu_avg_pct, cpu_max_pct."""
    steps = int(days * 288)
    rng = np.random.default_rng(0)
    frames = []
    for i in range(vms):
        daily = np.sin(2 * np.pi * np.arange(steps) / 288 + i)
        avg = np.clip(20 + 10 * daily + rng.normal(0, 2, steps), 0.3, 100)
        peak = np.minimum(avg + rng.exponential(10, steps), 100)
        frame = pd.DataFrame({"vm_id": str(1000 + 37 * i), "step": np.arange(steps)})
        frames.append(frame.assign(cpu_avg_pct=avg, cpu_max_pct=peak))
    trace = pd.concat(frames, ignore_index=True).astype(
        {"vm_id": "string", "step": "int32", "cpu_avg_pct": "float32", "cpu_max_pct": "float32"}
    )
    folder.mkdir(parents=True, exist_ok=True)
    trace.sample(frac=1.0, random_state=0).to_parquet(folder / azure.FILE_NAME, index=False)
    return folder


def test_each_vm_is_two_servers_measuring_cpu(tmp_path: Path) -> None:
    series = azure.load_series(write_trace(tmp_path, vms=2, days=1))
    assert list(series) == [f"azure-{v}-{k}" for v in ("1000", "1037") for k in ("avg", "max")]
    trace = pd.read_parquet(tmp_path / azure.FILE_NAME).sort_values("step")
    trace = trace[trace.vm_id == "1037"]
    for kind, column in azure.SERIES.items():
        frame = series[f"azure-1037-{kind}"]
        assert dc.validate_schema(frame) == (True, [])
        np.testing.assert_allclose(frame["cpu_user_pct"], trace[column], rtol=1e-6)
        np.testing.assert_allclose(frame["cpu_idle_pct"], 100 - frame["cpu_user_pct"])
        assert (frame["mem_used_pct"] == 40.0).all()  # training.nab's neutral constants
        assert frame["timestamp"].iloc[0] == azure.START
        assert (frame["timestamp"].diff().dropna() == pd.Timedelta(minutes=5)).all()
    peak, mean = series["azure-1037-max"], series["azure-1037-avg"]
    assert (peak["cpu_user_pct"] >= mean["cpu_user_pct"]).all()
    assert azure.START.day_name() == "Monday" and azure.START.hour == 0


def test_split_is_deterministic_disjoint_and_by_vm(tmp_path: Path) -> None:
    series = azure.load_series(write_trace(tmp_path))
    split = azure.make_split(series)
    assert split == azure.make_split(series)
    assert azure.make_split(series, seed=1).whole != split.whole
    held = {azure.vm_of(s) for s in split.whole}
    assert len(held) == 3 and len(split.whole) == 6  # 30 % of 10 VMs, both series of each
    assert set(split.whole) == {azure.server_name(v, k) for v in held for k in azure.SERIES}
    assert set(split.whole).isdisjoint(split.tail_start)
    assert set(split.whole) | set(split.tail_start) == set(series)
    tail = azure.START + int(0.7 * 3 * 288) * pd.Timedelta(minutes=5)
    assert set(split.tail_start.values()) == {tail}
    assert azure.heldout_vms(tmp_path) == sorted(held)


def test_training_frame_holds_only_the_early_steps_of_the_other_vms(tmp_path: Path) -> None:
    folder = write_trace(tmp_path)
    split = azure.make_split(azure.load_series(folder))
    train = azure.training_frame(folder)
    assert dc.validate_schema(train) == (True, [])
    assert set(train["server_name"]) == set(split.tail_start)
    assert not set(train["server_name"].map(azure.vm_of)) & set(azure.heldout_vms(folder))
    assert (train.groupby("server_name").size() == int(0.7 * 3 * 288)).all()
    assert train["timestamp"].max() < min(split.tail_start.values())


def test_heldout_parts_mean_and_max_apart(tmp_path: Path) -> None:
    folder = write_trace(tmp_path, days=7)
    split = azure.make_split(azure.load_series(folder))
    held = azure.heldout_frames(folder)
    assert list(held) == [
        "held-out VMs (mean)",
        "held-out VMs (max)",
        "held-out tails (mean)",
        "held-out tails (max)",
    ]
    for name, part in held.items():
        kind = "avg" if "mean" in name else "max"
        assert all(s.endswith(f"-{kind}") for s in part.measured)
        assert set(part.measured.values()) == {"cpu_user_pct"}
        assert set(part.frame["server_name"]) == set(part.cutoff) == set(part.measured)
        assert dc.validate_schema(part.frame) == (True, [])
    whole = held["held-out VMs (max)"]
    assert set(whole.cutoff) == {s for s in split.whole if s.endswith("-max")}
    assert set(whole.cutoff.values()) == {azure.START + pd.Timedelta(days=5)}  # nab's history
    tails = held["held-out tails (mean)"]
    assert tails.cutoff == {s: t for s, t in split.tail_start.items() if s.endswith("-avg")}
    assert len(tails.frame) == 7 * 7 * 288  # whole series: the encoder may reach back


def test_missing_file_or_columns_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="--no-azure"):
        azure.load_series(tmp_path)
    pd.DataFrame({"vm_id": ["1"], "step": [0]}).to_parquet(tmp_path / azure.FILE_NAME)
    with pytest.raises(ValueError, match="cpu_avg_pct"):
        azure.load_series(tmp_path)


HELD_OUT_VMS = sorted(
    "1054036 1054084 1061169 1061254 1099406 1102195 1114910 1220878 1221771 1331037 "
    "1471895 1475279 1555181 1652570 1663289 1947803 1985204 223811 737498 780697 "
    "807274 8201 825849 827636 847832 943893 948601 948898 964155 964235".split()
)


@needs_dataset
def test_the_shipped_trace_split() -> None:
    series = azure.load_series()
    split = azure.make_split(series)
    assert len(series) == 200 and len(split.whole) == 60 and len(split.tail_start) == 140
    assert set(split.tail_start.values()) == {azure.START + 5602 * pd.Timedelta(minutes=5)}
    assert sorted({azure.vm_of(s) for s in split.whole}) == HELD_OUT_VMS
