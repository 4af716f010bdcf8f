"""training.recurrence: window summaries and yesterday inputs, built from the window alone,
the same way for the training batches and the daemon; declared in config.json."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
import torch

import data_contract as dc
from inference.fast_base import agrees, deviation
from inference.fast_tft import accelerate
from tests.conftest import synthetic_fleet
from training import dataset as ds
from training import recurrence, splits
from training.batches import WindowDataset, group_codes, window_arrays
from training.inputs import build_inputs
from training.metadata import build_config
from training.model import build_model
from training.settings import Hardware, TrainConfig, run_settings

pytestmark = pytest.mark.usefixtures("one_torch_thread")
BOTH = ("summaries", "yesterday")
USER, LOAD = dc.METRIC_COLUMNS.index("cpu_user_pct"), dc.METRIC_COLUMNS.index("load_average")


@pytest.fixture(scope="module")
def setup() -> dict[str, Any]:
    """A 288/96 dataset of a 3-day fleet, an untrained model with both input sets (hidden
    size 16, as shipped) and its config.json."""
    prepared = ds.prepare_frame(synthetic_fleet(n_servers=2, days=3.0, seed=1))
    params = ds.dataset_parameters()
    split = splits.build_splits(prepared, params, 0.2)
    torch.manual_seed(0)
    model = build_model(split.training, recurrence_inputs=BOTH).eval()
    config = build_config(model, split.training, "UTC", ds.STEP_SECONDS)
    return {"split": split, "model": model, "config": config}


def training_batch(setup: dict[str, Any], windows: np.ndarray) -> tuple[dict, Any]:
    split, config = setup["split"], setup["config"]
    arrays = window_arrays(split.train_part, config, group_codes(split.training))
    return WindowDataset(arrays, config)[windows][0], arrays


def test_config_declares_each_input_and_the_network_reads_it(setup) -> None:
    spec = setup["config"]["inputs"]
    targets = recurrence.forecast_targets(list(dc.METRIC_COLUMNS))
    assert "uptime_days" not in targets and len(targets) == 13  # forecast by its rule
    summaries = [n for n, e in spec["reals"].items() if e["kind"] == "window_summary"]
    yesterday = [n for n, e in spec["reals"].items() if e["kind"] == "yesterday"]
    assert summaries == recurrence.summary_names(list(dc.METRIC_COLUMNS)) and len(summaries) == 39
    assert set(summaries) <= set(spec["static_variables"])
    assert set(yesterday) <= set(spec["decoder_variables"]) and len(yesterday) == 13
    assert not set(yesterday) & set(spec["encoder_variables"])  # decoder only
    assert spec["reals"]["cpu_user_pct_hour_mean"] | {"formula": ""} == {
        "kind": "window_summary", "target": "cpu_user_pct", "reduction": "mean", "steps": 12,
        "formula": ""}  # fmt: skip
    assert spec["reals"]["mem_used_pct_yesterday"]["lag"] == 288
    assert spec["x_reals"] == setup["model"].hparams.x_reals


def test_values_are_the_windows_baselines_in_normalised_units(setup) -> None:
    x, arrays = training_batch(setup, np.array([0, 37]))
    enc, cols = 288, {n: i for i, n in enumerate(setup["config"]["inputs"]["x_reals"])}
    for b, first in enumerate(arrays.starts[[0, 37]]):
        window = arrays.metrics[first : first + enc + 96].astype(np.float64)
        for m, transform in ((USER, lambda v: v), (LOAD, np.log1p)):
            y, name = transform(window[:, m]), dc.METRIC_COLUMNS[m]
            scale = max(np.sqrt(np.mean(np.diff(y[:enc]) ** 2)), ds.MIN_SCALE[name])
            norm = (y - y[enc - 1]) / scale
            static = x["encoder_cont"][b, 0].double().numpy()
            want = [norm[enc - 12 : enc].mean(), norm[enc - 12 : enc].max(), norm[:enc].max()]
            got = [static[cols[f"{name}_{s}"]] for s in ("hour_mean", "hour_max", "day_max")]
            np.testing.assert_allclose(got, want, atol=1e-5)
            assert max(map(abs, want)) > 0.1  # not the anchor itself
            got = x["decoder_cont"][b, :, cols[f"{name}_yesterday"]].numpy()
            np.testing.assert_allclose(got, norm[enc - 288 : enc - 288 + 96], atol=1e-5)
            assert not x["encoder_cont"][b, :, cols[f"{name}_yesterday"]].any()


def test_the_future_never_leaks_into_them(setup) -> None:
    """Training windows carry their decoder truth; these inputs must not read it."""
    x, arrays = training_batch(setup, np.array([5]))
    changed = copy.deepcopy(arrays)
    first = arrays.starts[5]
    changed.metrics[first + 288 : first + 384] += 40.0
    config = setup["config"]
    y = WindowDataset(changed, config)[np.array([5])][0]
    spec = config["inputs"]
    cols = [i for i, n in enumerate(spec["x_reals"]) if spec["reals"][n]["kind"] in
            ("window_summary", "yesterday")]  # fmt: skip
    assert len(cols) == 52
    for part in ("encoder_cont", "decoder_cont"):
        assert torch.equal(x[part][..., cols], y[part][..., cols])
    assert not torch.equal(x["decoder_target"][0], y["decoder_target"][0])  # it did change


def test_training_batches_and_the_daemon_build_the_same_inputs(setup) -> None:
    """What the model reads (encoder, static and decoder variables) is identical."""
    config, spec = setup["config"], setup["config"]["inputs"]
    x, arrays = training_batch(setup, np.array([3, 60]))
    rows = arrays.starts[[3, 60]][:, None] + np.arange(288)
    train_part = setup["split"].train_part.sort_values(["server_id", "time_idx"])
    daemon = build_inputs(
        config,
        arrays.metrics[rows],
        train_part["state"].to_numpy()[rows],
        ["x", "y"],
        arrays.time_idx[rows[:, -1]],
    )
    read = {"encoder_cont": spec["encoder_variables"] + spec["static_variables"]}
    read["decoder_cont"] = spec["decoder_variables"]
    for part, names in read.items():
        cols = [spec["x_reals"].index(n) for n in names if n in spec["x_reals"]]
        assert torch.equal(daemon[part][..., cols], x[part][..., cols]), part
    assert torch.equal(daemon["encoder_cat"], x["encoder_cat"])
    assert all(
        torch.equal(a, b) for a, b in zip(daemon["target_scale"], x["target_scale"], strict=True)
    )


def test_the_accelerated_forward_matches_the_library(setup) -> None:
    model = setup["model"]
    x, _ = training_batch(setup, np.array([1, 2, 70]))
    fast = accelerate(copy.deepcopy(model))
    with torch.inference_mode():
        want, got = model(x), fast(x)
    assert "forward" in vars(fast.decoder_variable_selection)
    assert "forward" in vars(fast.static_variable_selection)
    for g, w in zip(got["prediction"], want["prediction"], strict=True):
        assert agrees(g, w), deviation(g, w)
    for key in ("static_variables", "decoder_variables"):
        assert agrees(got[key], want[key]), key


def test_the_inputs_change_the_forecast(setup) -> None:
    """The network reads them: another yesterday gives another forecast."""
    model, spec = setup["model"], setup["config"]["inputs"]
    x, _ = training_batch(setup, np.array([4]))
    other = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in x.items()}
    other["decoder_cont"][..., spec["x_reals"].index("cpu_user_pct_yesterday")] += 3.0
    with torch.inference_mode():
        a, b = model(x)["prediction"][USER], model(other)["prediction"][USER]
    assert not torch.equal(a, b)


def test_unknown_sets_long_horizons_and_the_library_loader_are_refused(setup) -> None:
    with pytest.raises(ValueError, match="unknown recurrence inputs"):
        recurrence.check_sets(("weekly",))
    assert recurrence.check_sets(["yesterday", "summaries"]) == BOTH
    long = copy.copy(setup["split"].training)
    long.max_prediction_length = 289
    with pytest.raises(ValueError, match="at most one day"):
        recurrence.model_overrides(long, ("yesterday",), ds.STEP_SECONDS)
    assert recurrence.model_overrides(long, (), ds.STEP_SECONDS) == {}
    cpu = Hardware("cpu", 32, 0, "CPU")
    with pytest.raises(ValueError, match="--loader fast"):
        run_settings(TrainConfig(loader="library", recurrence_inputs=BOTH), cpu)


def test_a_short_window_is_refused_for_yesterday(setup) -> None:
    metrics = np.ones((1, 200, 14), dtype=np.float32)
    states = np.full((1, 200), "healthy", dtype=object)
    with pytest.raises(ValueError, match="288 encoder steps"):
        build_inputs(setup["config"], metrics, states, ["x"], np.array([5_900_000]))


def test_a_model_without_them_has_the_datasets_inputs_only(setup) -> None:
    split = setup["split"]
    plain = build_model(split.training, hidden_size=8, hidden_continuous_size=4)
    config = build_config(plain, split.training, "UTC", ds.STEP_SECONDS)
    kinds = {e["kind"] for e in config["inputs"]["reals"].values()}
    assert not kinds & {"window_summary", "yesterday"}
    assert config["inputs"]["x_reals"] == list(split.training.reals)
