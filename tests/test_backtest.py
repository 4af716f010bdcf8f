"""The backtest: early-warning labels and scores, the NAB split, the Azure sources, and
whole runs on stubs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import data_contract as dc
import risk
from bench import backtest
from bench import early_warning as ew
from tests.test_azure import SHIPPED, write_trace
from training import azure, heldout, nab, scoring

MEM = risk.RISK_METRICS.index("mem_used_pct")
M = len(risk.RISK_METRICS)


def _paths(now_mem: float, future_mem: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """(1, M) now and (1, 96, M) future with mem_used_pct set, everything else quiet."""
    now = np.zeros((1, M))
    now[0, MEM] = now_mem
    future = np.zeros((1, 96, M))
    future[0, :, MEM] = np.resize(future_mem, 96)
    return now, future


@pytest.mark.parametrize(
    ("now", "future", "expected", "lead"),
    [
        (80.0, [80.0] * 9 + [96.0], ew.EVENT, 10),  # critical at step 10
        (80.0, [80.0] * 95 + [95.0], ew.EVENT, 96),  # the last step still counts
        (80.0, [80.0] * 4 + [96.0], ew.NEITHER, 5),  # too soon to warn
        (86.0, [80.0] * 9 + [96.0], ew.NEITHER, 10),  # already at warning
        (80.0, [80.0] * 10 + [90.0], ew.NEITHER, 0),  # warning but never critical
        (80.0, [80.0], ew.NEGATIVE, 0),  # stays below warning
        (80.0, [80.0] * 10 + [np.nan], ew.NEITHER, 0),  # missing: not known quiet
    ],
)
def test_labels(now: float, future: list[float], expected: int, lead: int) -> None:
    labels, first = ew.label(*_paths(now, future))
    assert labels[0, MEM] == expected and first[0, MEM] == lead
    assert (labels[0, np.arange(M) != MEM] == ew.NEGATIVE).all()


def test_warning_scores() -> None:
    labels = np.array([[ew.EVENT, ew.EVENT, ew.NEGATIVE, ew.NEGATIVE, ew.NEITHER]]).T
    flags = np.array([[True, False, True, False, True]]).T
    lead = np.array([[20, 30, 0, 0, 0]]).T
    out = ew.warning_scores(labels, flags, lead)
    assert out == {
        "events": 2,
        "negatives": 2,
        "recall": 0.5,
        "false_alarm_rate": 0.5,
        "median_lead_steps": 20.0,
    }
    silent = ew.warning_scores(labels, np.zeros_like(flags), lead)
    assert silent["recall"] == 0.0 and np.isnan(silent["median_lead_steps"])
    assert np.isnan(ew.warning_scores(labels[2:], flags[2:], lead[2:])["recall"])


def _current_and_trajectory(mem_p50: float) -> tuple[np.ndarray, np.ndarray]:
    current = np.full((1, 14), 1.0)
    current[0, dc.METRIC_COLUMNS.index("cpu_idle_pct")] = 80.0
    trajectory = np.repeat(current[:, None, :, None], 96, axis=1).repeat(3, axis=3)
    trajectory[0, 20:, dc.METRIC_COLUMNS.index("mem_used_pct"), 1] = mem_p50
    return current, trajectory


def test_model_flags_follow_the_daemon_risk() -> None:
    flags = ew.model_flags(*_current_and_trajectory(97.0), np.array([np.nan]))
    assert flags[0].tolist() == [m == "mem_used_pct" for m in risk.RISK_METRICS]
    assert not ew.model_flags(*_current_and_trajectory(50.0), np.array([np.nan])).any()
    watch = risk.Assessment(40, "watch", [{"metric": "mem_used_pct"}])
    assert not ew.daemon_flags([watch]).any()  # watch level: no alarm


def test_rule_flags_on_a_point_path() -> None:
    path = np.full((2, 96, 14), 10.0)
    path[:, :, dc.METRIC_COLUMNS.index("cpu_idle_pct")] = 50.0
    path[0, 50, dc.METRIC_COLUMNS.index("cpu_idle_pct")] = 4.0  # cpu_used 96 at step 51
    path[1, :, dc.METRIC_COLUMNS.index("load_average")] = 40.0  # 2.5 per core on 16 cores
    flags = ew.rule_flags(path, np.array([np.nan, 16.0]))
    cpu, load = risk.RISK_METRICS.index("cpu_used_pct"), risk.RISK_METRICS.index("load_per_core")
    assert flags[0, cpu] and flags.sum() == 2 and flags[1, load]


# --- the NAB split ---------------------------------------------------------------------


def _nab_folder(tmp_path: Path, n: int = 10, days: float = 8.0) -> Path:
    stamps = pd.date_range("2014-02-14", periods=int(days * 288), freq="5min")
    for i in range(n):
        kind = "ec2_cpu_utilization" if i % 3 else "ec2_network_in"
        values = 20 + 10 * np.sin(np.arange(len(stamps)) * 2 * np.pi / 288) + i
        pd.DataFrame({"timestamp": stamps, "value": values}).to_csv(
            tmp_path / f"{kind}_{i:02d}.csv", index=False
        )
    stamps = pd.date_range("2014-02-14", periods=1200, freq="5min")  # too short to hold out whole
    pd.DataFrame({"timestamp": stamps, "value": 1e6}).to_csv(
        tmp_path / "iio_NetworkIn.csv", index=False
    )
    return tmp_path


def test_nab_split_is_deterministic_and_disjoint(tmp_path: Path) -> None:
    folder = _nab_folder(tmp_path)
    frames = {s: f for s, (_, f) in nab.load_series(folder).items()}
    split = nab.make_split(frames)
    assert split == nab.make_split(frames)
    assert len(split.whole) == 3 and "cw-iio_NetworkIn" not in split.whole
    assert set(split.whole).isdisjoint(split.tail_start)
    assert set(split.whole) | set(split.tail_start) == set(frames)
    assert nab.make_split(frames, seed=1).whole != split.whole
    train = nab.training_frame(folder)
    assert dc.validate_schema(train) == (True, [])
    assert set(train["server_name"]) == set(split.tail_start)
    for server, start in split.tail_start.items():
        part = train[train["server_name"] == server]
        assert part["timestamp"].max() < start
        assert len(part) == int(0.7 * len(frames[server]))
    held = nab.heldout_frames(folder)
    assert set(held["held-out series"].measured) == set(split.whole)
    assert held["held-out tails"].cutoff == split.tail_start
    whole = held["held-out series"]
    server = split.whole[0]
    first = whole.frame.loc[whole.frame["server_name"] == server, "timestamp"].min()
    assert whole.cutoff[server] == first + pd.Timedelta(days=5)
    assert nab.training_measured(folder) == {
        s: frames_col
        for s, frames_col in (
            (s, "net_in_mb_s" if "network" in s.lower() else "cpu_user_pct")
            for s in split.tail_start
        )
    }


# --- whole runs ------------------------------------------------------------------------


class OracleForecaster:
    """Knows the future: p50 = the truth (carried over gaps), p10/p90 = truth -/+ 1."""

    horizon = 96

    def __init__(self, panel: scoring.Panel) -> None:
        self.panel = panel

    def forecast(self, values, states, servers, last_step) -> np.ndarray:
        rows = np.array([self.panel.servers.index(s) for s in servers])
        steps = (last_step - self.panel.first_step)[:, None] + np.arange(1, 97)
        p50 = self.panel.filled[rows[:, None], steps].astype(np.float32)
        assert (values[:, -1] == self.panel.filled[rows, steps[:, 0] - 1]).all()
        return np.stack([p50 - 1, p50, p50 + 1], axis=-1)


def test_an_oracle_scores_zero_and_full_coverage(small_fleet: pd.DataFrame) -> None:
    frame = small_fleet.drop(index=range(700, 720)).reset_index(drop=True)  # a gap
    cutoff = pd.Timestamp("2025-01-07 12:00", tz="UTC")
    forecaster = OracleForecaster(scoring.dense_panel(frame))
    source = backtest.Source("t", frame, cutoff, groups={"one": {"ppgen001"}})
    result = backtest.evaluate(forecaster, source, every=24, cores={})
    part = result["groups"]["all servers"]
    assert part["origins"] == 4 * len(range(432, 864 - 96, 24))
    for row in part["summary"]:
        assert row["mase_tft"] == pytest.approx(0.0, abs=1e-3) and row["coverage"] == 1.0
        assert row["mase_last"] > 0 and row["beats_last"] == 1.0
    assert result["groups"]["one"]["servers"] == 1
    assert {r["method"] for r in part["warnings"]} == set(backtest.RULES.values())
    assert "| 30m |" in backtest.markdown(result)


@pytest.mark.parametrize(
    ("until", "split", "first"),
    [
        ("2025-01-08T00:00:00+00:00", "rows from --until on", 576),
        ("2025-02-01T00:00:00+00:00", "validation period", 720),  # no rows after --until
        (None, "validation period", 720),
    ],
)
def test_the_artifacts_table_scores_what_the_model_did_not_see(
    small_fleet: pd.DataFrame, until: str | None, split: str, first: int
) -> None:
    info = {"until": until, "validation_start": "2025-01-08T12:00:00+00:00"}
    info |= {"holdout_servers": ["ppgen001"], "unused_servers": ["ppgen003"]}
    forecaster = OracleForecaster(scoring.dense_panel(small_fleet))
    table = heldout.score_model(forecaster, small_fleet, info, encoder=288)
    assert table["split"].startswith(split) and table["every_steps"] == heldout.EVERY
    assert table["horizons"] == {"30m": 6, "1h": 12, "8h": 96}
    everyone, unseen = table["groups"]["all servers"], table["groups"]["unseen servers"]
    assert everyone["origins"] == 4 * len(range(first, 864 - 96, 24)) and unseen["servers"] == 2
    for scores in everyone["mean_over_metrics"].values():
        assert scores["tft"] == pytest.approx(0.0, abs=1e-3) and scores["last"] > 0
    json.dumps(table, allow_nan=False)  # as training_info.json is written


def test_nab_scores_only_the_measured_column(tmp_path: Path) -> None:
    held = nab.heldout_frames(_nab_folder(tmp_path))["held-out series"]
    source = backtest.Source("nab", held.frame, held.cutoff, held.measured)
    forecaster = OracleForecaster(scoring.dense_panel(held.frame))
    part = backtest.evaluate(forecaster, source, every=48, cores={})["groups"]["all servers"]
    assert {r["metric"] for r in part["per_metric"]} == set(held.measured.values())


AZURE_PARTS = ["held-out VMs (mean)", "held-out VMs (max)"]
AZURE_PARTS += ["held-out tails (mean)", "held-out tails (max)"]


def test_azure_sources_score_only_cpu_mean_and_max_apart(tmp_path: Path) -> None:
    sources = backtest.azure_sources(write_trace(tmp_path, vms=4, days=6))
    assert [s.title for s in sources] == [f"Azure {p}" for p in AZURE_PARTS]
    for source in sources:
        forecaster = OracleForecaster(scoring.dense_panel(source.frame))
        result = backtest.evaluate(forecaster, source, every=48, cores={})
        part = result["groups"]["all servers"]
        assert part["origins"] > 0 and {r["metric"] for r in part["per_metric"]} == {"cpu_user_pct"}
        assert all(r["mase_tft"] == pytest.approx(0.0, abs=1e-3) for r in part["per_metric"])
        events = part["events_per_metric"]  # only the measured CPU can have events
        assert all(n == 0 for m, n in events.items() if m != "cpu_used_pct")
        assert result["series"] == part["servers"]  # one measured column per server


def test_azure_flag_names_the_folder_and_excludes_the_others(tmp_path: Path) -> None:
    assert backtest.parse_args(["--azure"]).azure == azure.DEFAULT_DIR
    assert backtest.parse_args(["--azure", str(tmp_path)]).azure == tmp_path
    with pytest.raises(SystemExit):
        backtest.parse_args(["--azure", "--nab"])


@pytest.mark.skipif(not SHIPPED.is_file(), reason=f"the Azure VM CPU sample is not at {SHIPPED}")
def test_azure_sources_from_the_shipped_trace() -> None:
    sources = backtest.azure_sources(azure.DEFAULT_DIR)
    assert [s.title for s in sources] == [f"Azure {p}" for p in AZURE_PARTS]
    assert [len(s.measured) for s in sources] == [30, 30, 70, 70]


@pytest.mark.usefixtures("one_torch_thread")
def test_the_shipped_model_through_the_daemon_forecaster(small_fleet: pd.DataFrame) -> None:
    from inference.forecast import TFTForecaster
    from training import load_artifact

    forecaster = TFTForecaster(load_artifact("models/latest"))
    source = backtest.Source("t", small_fleet, pd.Timestamp("2025-01-08", tz="UTC"))
    part = backtest.evaluate(forecaster, source, every=48, cores={})["groups"]["all servers"]
    assert part["origins"] == 4 * 4
    for row in part["per_metric"]:
        assert np.isfinite(row["mase_tft"]) and 0 <= row["coverage"] <= 1
        if row["metric"] == "cpu_user_pct":  # a daily cycle the model knows: a sane error
            assert row["mae_tft"] < 15 and row["mase_tft"] < 5
