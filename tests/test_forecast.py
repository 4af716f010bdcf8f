"""The daemon's forecasts (ticks -> buffers -> numpy inputs -> TFT) equal the library's own
predict() on the same windows, gaps included; and the labelled baseline."""

from __future__ import annotations

import numpy as np
import orjson
import pandas as pd
import pytest
import torch

import data_contract as dc
from fleet.generate import generate_fleet
from inference.fast_base import agrees, deviation
from inference.forecast import HIGH, LOW, SeasonalNaiveForecaster, TFTForecaster
from inference.service import InferenceService
from inference.windows import window_values
from tests.daemon_helpers import Clock
from training import dataset as tds
from training import load_artifact
from training.artifact import LoadedModel

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def feed_body(frame: pd.DataFrame) -> bytes:
    out = frame.copy()
    out["timestamp"] = out["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return orjson.dumps(out.to_dict("records"))


@pytest.fixture(scope="module")
def loaded() -> LoadedModel:
    return load_artifact("models/latest")


@pytest.fixture(scope="module")
def fleet_frame() -> pd.DataFrame:
    frame = generate_fleet(n_servers=3, days=1.6, seed=5).frame
    gap = (frame.server_name == "ppdb001") & frame.timestamp.between(
        "2025-01-06T20:00", "2025-01-06T21:30"
    )
    return frame[~gap].reset_index(drop=True)


def library_forecast(loaded: LoadedModel, frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """predict() of the last window of each server: index (decoder start, server_id) and
    (B, 96, 14, 3) quantiles, clipped like the daemon's."""
    data = tds.dataset_from_json(loaded.config["dataset"], tds.prepare_frame(frame), predict=True)
    out = loaded.model.predict(
        data,
        mode="quantiles",
        return_index=True,
        batch_size=8,
        trainer_kwargs={
            "logger": False,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "accelerator": "cpu",
        },
    )
    quantiles = np.sort(np.stack([t.numpy() for t in out.output], axis=2), axis=-1)
    return out.index, np.clip(quantiles, LOW[:, None], HIGH[:, None])


def rule_metrics(loaded: LoadedModel) -> list[int]:
    """Positions of the metrics the artifact forecasts by rule, not by the network."""
    return [dc.METRIC_COLUMNS.index(m) for m in loaded.config.get("deterministic_metrics", {})]


def assert_same_forecast(loaded: LoadedModel, got: np.ndarray, want: np.ndarray) -> None:
    """(96, 14, 3) forecasts of one window agree up to float32 rounding: each network
    metric in its normaliser's transformed units (before expm1, which turns rounding into
    an error proportional to the value), norm-wise, as the fast forward's self-check."""
    normalizers = loaded.model.output_transformer.normalizers
    for m in np.setdiff1d(np.arange(len(dc.METRIC_COLUMNS)), rule_metrics(loaded)):
        g, w = (
            normalizers[m].preprocess(torch.tensor(a[:, m], dtype=torch.float64))
            for a in (got, want)
        )
        assert agrees(g, w), f"{dc.METRIC_COLUMNS[m]}: deviation {deviation(g, w):.2e}"


@pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("fast", [False, True], ids=["library-forward", "accelerated"])
def test_daemon_forecast_equals_library_predict(
    loaded: LoadedModel, fleet_frame: pd.DataFrame, fast: bool
) -> None:
    index, expected = library_forecast(loaded, fleet_frame)
    start = pd.Timestamp(int(index.time_idx.iloc[0]) * 300, unit="s", tz="UTC")
    assert (index.time_idx == index.time_idx.iloc[0]).all()

    clock = Clock(start.timestamp() + 10)  # the decoder's first step stays open
    service = InferenceService(forecaster=TFTForecaster(loaded, fast=fast), clock=clock)
    fed = fleet_frame[fleet_frame.timestamp <= start]
    service.feed(feed_body(fed))
    rows = np.flatnonzero(service.buffers.ready())
    snapshot = service.buffers.snapshot(rows)
    values, states = window_values(snapshot)
    ours = service.forecaster.forecast(values, states, snapshot.servers, snapshot.last_step)
    assert service.run_pass() == 3
    id_to_name = loaded.server_mapping["id_to_name"]
    for i, server_id in enumerate(index.server_id):
        row = service.buffers.index[id_to_name.get(str(server_id), str(server_id))]
        k = rows.tolist().index(row)
        assert snapshot.last_step[k] == index.time_idx.iloc[i] - 1
        assert_same_forecast(loaded, ours[k], expected[i])
        cached = service.cache[row]  # the same forecast, kept as float16
        assert cached.origin == snapshot.last_step[k]
        np.testing.assert_allclose(cached.trajectory, ours[k], rtol=2e-3, atol=1e-2)


def test_unknown_servers_are_forecast_with_the_unknown_id(loaded: LoadedModel) -> None:
    forecaster = TFTForecaster(loaded)
    values = np.full((2, 288, 14), 10.0, dtype=np.float32)
    values[:, :, dc.METRIC_COLUMNS.index("cpu_idle_pct")] = 80.0
    states = np.zeros((2, 288), dtype=np.int8)
    out = forecaster.forecast(values, states, ["never-seen-1", "never-seen-2"], np.full(2, 5787000))
    assert out.shape == (2, 96, 14, 3) and np.isfinite(out).all()
    assert_same_forecast(loaded, out[0], out[1])  # same inputs and id
    assert (out >= LOW[:, None]).all() and (out <= HIGH[:, None]).all()


def test_quantiles_never_cross_and_uptime_follows_its_rule(loaded: LoadedModel) -> None:
    rng = np.random.default_rng(0)
    values = rng.uniform(0, 100, (64, 288, 14)).astype(np.float32)  # wild, out of training
    values[:32, 200:] = 1.0  # and regime changes
    values[..., dc.METRIC_COLUMNS.index("uptime_days")] = np.r_[np.full(10, 3), np.full(278, 4)]
    states = rng.integers(0, 8, (64, 288)).astype(np.int8)
    out = TFTForecaster(loaded).forecast(values, states, ["x"] * 64, np.full(64, 5787000))
    assert (out[..., 0] <= out[..., 1]).all() and (out[..., 1] <= out[..., 2]).all()
    assert (out >= LOW[:, None]).all() and (out <= HIGH[:, None]).all()
    if "uptime_days" in loaded.config.get("deterministic_metrics", {}):
        uptime = out[:, :, dc.METRIC_COLUMNS.index("uptime_days")]
        assert (uptime[:, :10] == 4).all() and (uptime[:, 10:] == 5).all()  # day 5 at +11
        assert "uptime_days" in TFTForecaster(loaded).info["deterministic"]


def test_seasonal_naive_repeats_yesterday_and_says_so() -> None:
    baseline = SeasonalNaiveForecaster(reason="test")
    values = np.arange(2 * 288 * 14, dtype=np.float32).reshape(2, 288, 14)
    out = baseline.forecast(values, np.zeros((2, 288), np.int8), ["a", "b"], np.array([10, 10]))
    assert out.shape == (2, 96, 14, 3)
    np.testing.assert_array_equal(out[:, :, :, 1], values[:, :96])  # step h = h steps after t-288
    np.testing.assert_array_equal(out[..., 0], out[..., 2])
    assert baseline.info["kind"] == "seasonal_naive" and "not the TFT" in baseline.info["note"]
    with pytest.raises(ValueError, match="288 steps"):
        baseline.forecast(values[:, :100], np.zeros((2, 100), np.int8), ["a", "b"], np.zeros(2))
