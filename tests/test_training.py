"""Dataset building and the trainer (tiny models, a few seconds each)."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
import torch.utils.deterministic
from pytorch_forecasting import TimeSeriesDataSet

import data_contract as dc
from training import dataset as ds
from training import splits
from training.artifact import ARTIFACT_FILES, load_artifact
from training.batches import (
    EpochBatches,
    WindowDataset,
    group_codes,
    window_arrays,
)
from training.fitting import BestState, make_window_loaders
from training.inputs import build_inputs
from training.metadata import build_config
from training.model import build_model
from training.normalizers import MetricNormalizer
from training.settings import Hardware, run_settings
from training.tft_trainer import TrainConfig, detect_hardware, main, train

TINY = dict(
    epochs=1,
    hidden_size=8,
    hidden_continuous_size=4,
    encoder_length=24,
    horizon=6,
    batch_size=32,
    num_workers=0,
    limit_train_batches=3,
    limit_val_batches=2,
    progress_bar=False,
    recurrence_inputs=(),  # a 24-step encoder holds no "yesterday"
)
TINY_ARGS = [
    "--epochs", "1", "--hidden-size", "8", "--encoder-length", "24", "--horizon", "6",
    "--batch-size", "32", "--num-workers", "0", "--limit-train-batches", "2",
    "--limit-val-batches", "1", "--no-progress-bar", "--recurrence-inputs", "none",
]  # fmt: skip
_TRAINED: dict[str, Path] = {}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def trained(small_fleet: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny training per test session (small_fleet is function-scoped, so cache)."""
    if "path" not in _TRAINED:
        _TRAINED["path"] = train(
            small_fleet, tmp_path_factory.mktemp("models"), TrainConfig(**TINY)
        )
    return _TRAINED["path"]


def _drop_steps(frame: pd.DataFrame, server: str, start: int, count: int) -> pd.DataFrame:
    rows = frame.index[frame.server_name == server][start : start + count]
    return frame.drop(index=rows).reset_index(drop=True)


# --- frame preparation ---------------------------------------------------------------


def test_prepare_frame_builds_time_index_ids_and_features(small_fleet: pd.DataFrame) -> None:
    prepared = ds.prepare_frame(small_fleet)
    assert len(prepared) == len(small_fleet) and not prepared["filled"].any()
    for name, group in prepared.groupby("server_name"):
        assert (np.diff(group["time_idx"].to_numpy()) == 1).all()
        assert (group["server_id"] == dc.encode_server_name(name)).all()
    first = small_fleet["timestamp"].min()
    assert prepared["time_idx"].min() == int(first.timestamp()) // ds.STEP_SECONDS
    assert prepared["time_idx"].dtype == np.int64
    for column in dc.TIME_FEATURES:
        assert prepared[column].dtype == np.float32
        assert prepared[column].between(-1, 1).all()
    assert all(prepared[m].dtype == np.float32 for m in dc.METRIC_COLUMNS)
    noon = prepared[prepared.timestamp == first + pd.Timedelta(hours=12)].iloc[0]
    assert noon["hour"] == pytest.approx((12 - 11.5) / 11.5)


def test_gaps_are_filled_offline_with_carried_metrics_and_own_time(small_fleet) -> None:
    frame = _drop_steps(small_fleet, "ppgen001", 100, 30)
    prepared = ds.prepare_frame(frame)
    server = prepared[prepared.server_name == "ppgen001"].reset_index(drop=True)
    assert len(server) == 864 and server["filled"].sum() == 30
    gap = server.iloc[100:130]
    assert (gap["state"] == "offline").all() and gap["filled"].all()
    last_seen = server.iloc[99]
    assert (gap["cpu_user_pct"] == last_seen["cpu_user_pct"]).all()
    expected = ds.scaled_time_features(gap["timestamp"])
    assert np.array_equal(gap[list(dc.TIME_FEATURES)].to_numpy(), expected.to_numpy())
    assert gap["hour"].nunique() > 1  # not carried forward from the last row


def test_unaligned_duplicate_and_naive_timestamps(small_fleet: pd.DataFrame) -> None:
    frame = small_fleet.copy()
    frame["timestamp"] = frame["timestamp"].dt.tz_localize(None) + pd.Timedelta(seconds=17)
    later = frame.iloc[[5]].assign(
        timestamp=frame.timestamp.iloc[5] + pd.Timedelta(seconds=5),
        cpu_user_pct=99.0,
        back_close_wait=50,
        uptime_days=99,
        state="heavy_load",
    )
    prepared = ds.prepare_frame(pd.concat([later, frame], ignore_index=True))
    reference = ds.prepare_frame(small_fleet)
    assert prepared["time_idx"].tolist() == reference["time_idx"].tolist()
    # two ticks in one step: the daemon's rule (mean, max, latest), not "last row wins"
    ticks = np.stack(
        [frame.loc[5, list(dc.METRIC_COLUMNS)], later[list(dc.METRIC_COLUMNS)].iloc[0]]
    )
    expected = dc.aggregate_ticks(ticks.astype(np.float64))
    assert np.allclose(prepared.loc[5, list(dc.METRIC_COLUMNS)].astype(float), expected, atol=1e-4)
    assert prepared.loc[5, "back_close_wait"] == 50 and prepared.loc[5, "uptime_days"] == 99
    assert prepared.loc[5, "state"] == "heavy_load"
    assert prepared["timestamp"].dt.tz is None


def test_real_lengths_dataset_and_forward(small_fleet: pd.DataFrame) -> None:
    prepared = ds.prepare_frame(small_fleet)
    params = ds.dataset_parameters()  # 288 / 96
    train_set, val_set = splits.build_datasets(prepared, params, val_fraction=0.2)
    cutoff = splits.split_index(prepared, 0.2, ds.HORIZON)
    assert val_set.min_prediction_idx == cutoff + 1
    x, y = next(iter(train_set.to_dataloader(train=False, batch_size=4)))
    assert x["encoder_cont"].shape == (4, 288, len(train_set.reals))
    assert x["decoder_cont"].shape == (4, 96, len(train_set.reals))
    assert len(x["target_scale"]) == 14 and len(y[0]) == 14
    assert int(x["decoder_time_idx"].max()) <= cutoff
    vx, _ = next(iter(val_set.to_dataloader(train=False, batch_size=4)))
    assert int(vx["decoder_time_idx"].min()) > cutoff
    model = build_model(train_set, hidden_size=8, hidden_continuous_size=4).eval()
    with torch.no_grad():
        prediction = model(x)["prediction"]
    assert len(prediction) == 14 and all(p.shape == (4, 96, 3) for p in prediction)
    config = build_config(model, train_set, "UTC", ds.STEP_SECONDS)
    train_part = splits.split_frames(prepared, params, 0.2)[0]
    windows = WindowDataset(window_arrays(train_part, config, group_codes(train_set)), config)
    fast = windows[np.arange(4)]
    _assert_same(fast, next(iter(train_set.to_dataloader(train=False, batch_size=4))))


def test_encoders_know_all_states_and_servers_are_not_inputs(small_fleet) -> None:
    prepared = ds.prepare_frame(small_fleet)
    train_set, _ = splits.build_datasets(prepared, ds.dataset_parameters(24, 6), 0.2)
    states = train_set._categorical_encoders["state"]
    assert set(states.classes_) == {"nan", *dc.VALID_STATES}
    new = prepared[prepared.server_name == "ppgen000"].assign(
        server_name="brand-new", server_id="999999999", state="heavy_load"
    )
    other = TimeSeriesDataSet.from_dataset(train_set, new, predict=True, stop_randomization=True)
    x, _ = next(iter(other.to_dataloader(train=False, batch_size=1)))
    # no server embedding: a server is forecast from its own history, not its name
    assert other.flat_categoricals == ["state"] and "server_id" not in other.static_categoricals
    assert int(x["encoder_cat"][0, 0, 0]) == states.classes_["heavy_load"] > 0


def test_last_anchor_makes_persistence_the_networks_zero() -> None:
    regime = torch.cat([torch.full((200,), 93.0), torch.full((88,), 1.0)])  # a job ended
    norm = MetricNormalizer(min_scale=1.0, anchor="last").fit(regime)
    assert float(norm.center_) == 1.0  # the last value, not the 24 h mean (~66)
    assert float(norm.scale_) == pytest.approx(92 / 287**0.5, rel=1e-5)  # rms of the steps
    back = norm(dict(prediction=torch.zeros(1, 4), target_scale=norm.get_parameters()[None]))
    assert torch.equal(back, torch.ones(1, 4))  # output 0 = "stays where it is"
    flat = MetricNormalizer(min_scale=1.0, anchor="last").fit(torch.full((50,), 1.1))
    assert float(flat.scale_) == 1.0 and float(flat.center_) == pytest.approx(1.1)
    with pytest.raises(ValueError, match="anchor"):
        MetricNormalizer(anchor="median")


def test_log1p_kb_keeps_kilobyte_rates_apart() -> None:
    rates = torch.tensor([0.0001, 0.002, 0.05, 3.0, 250.0])  # MB/s, 0.1 KB/s .. 250 MB/s
    norm = MetricNormalizer(transformation="log1p_kb", min_scale=0.1, anchor="last").fit(rates)
    assert (torch.diff(norm.preprocess(rates)) > 0.9).all()  # 0.1 KB/s vs 2 KB/s: log(3)
    assert float(torch.log1p(rates[1]) - torch.log1p(rates[0])) < 0.01  # plain log1p: no
    scaled = norm.transform(rates)
    back = norm(dict(prediction=scaled[None], target_scale=norm.get_parameters()[None]))
    assert torch.allclose(back[0], rates, rtol=1e-4)


def test_metric_normalizer_floors_scale_and_inverts_log1p() -> None:
    flat = MetricNormalizer(min_scale=1.0).fit(torch.zeros(50))
    assert float(flat.scale_) == 1.0
    rates = torch.tensor([0.0, 0.5, 3.0, 250.0])
    norm = MetricNormalizer(transformation="log1p", min_scale=0.1).fit(rates)
    scaled = norm.transform(rates)
    back = norm(dict(prediction=scaled[None], target_scale=norm.get_parameters()[None]))
    assert torch.allclose(back[0], rates, atol=1e-4)
    read_only = np.arange(5, dtype=np.float32)
    read_only.flags.writeable = False
    assert np.allclose(MetricNormalizer().fit(read_only).transform(read_only).std(), 1.0, atol=0.2)


def test_holdout_draw_is_seeded_and_spread_over_profiles() -> None:
    names = [f"ppdb{i:03d}" for i in range(6)] + [f"ppweb{i:03d}" for i in range(6)] + ["ppml1"]
    held = splits.holdout_servers(names, 3, seed=1)
    assert held == splits.holdout_servers(names, 3, seed=1) and len(set(held)) == 3
    assert {splits.profile_of(n) for n in held} == {"ppdb", "ppweb", "ppml"}
    assert splits.profile_of("cw-ec2_cpu_utilization_24ae8d") == "cw"
    assert any(splits.holdout_servers(names, 3, seed=s) != held for s in range(2, 8))


def test_loss_weights_average_one_and_favour_small_scales(small_fleet) -> None:
    weights = ds.target_loss_weights(ds.prepare_frame(small_fleet))
    assert len(weights) == 14 and np.mean(weights) == pytest.approx(1.0)
    named = dict(zip(dc.METRIC_COLUMNS, weights, strict=True))
    assert named["cpu_user_pct"] < named["swap_used_pct"]  # std ~11 vs flat (floor 1)


# --- fast batches --------------------------------------------------------------------


def _assert_same(fast: object, library: object, path: str = "batch") -> None:
    """Same structure, and tensors with the same dtype, shape and values."""
    if isinstance(library, dict):
        assert isinstance(fast, dict) and fast.keys() == library.keys(), path
        for key in library:
            _assert_same(fast[key], library[key], f"{path}.{key}")
    elif isinstance(library, list | tuple):
        assert isinstance(fast, list | tuple) and len(fast) == len(library), path
        for i, (a, b) in enumerate(zip(fast, library, strict=True)):
            _assert_same(a, b, f"{path}[{i}]")
    elif library is None:
        assert fast is None, path
    else:
        assert (fast.dtype, fast.shape) == (library.dtype, library.shape), path
        assert torch.equal(fast, library), path


def _gap_and_unseen_server(frame: pd.DataFrame) -> pd.DataFrame:
    """A 20-step gap in ppgen002's training period, and a server with data in the
    validation period only (never seen in training)."""
    frame = _drop_steps(frame, "ppgen002", 300, 20)
    late = frame[frame.server_name == "ppgen000"].iloc[-150:].assign(server_name="ppgen999")
    return pd.concat([frame, late], ignore_index=True)


def test_fast_batches_equal_library_batches(small_fleet) -> None:
    prepared = ds.prepare_frame(_gap_and_unseen_server(small_fleet))
    split = splits.build_splits(prepared, ds.dataset_parameters(24, 6), 0.2)
    model = build_model(split.training, hidden_size=8, hidden_continuous_size=4)
    config = build_config(model, split.training, "UTC", ds.STEP_SECONDS)
    loaders = make_window_loaders(split, config, 64, (1, 1))
    offline = config["inputs"]["categorical_encodings"]["state"]["classes"]["offline"]
    special = {}
    for name, loader, library in zip(
        ("train", "val"), loaders, (split.training, split.validation), strict=True
    ):
        a, index = loader.dataset.arrays, library.index
        assert np.array_equal(a.time_idx[a.starts], index["time"])  # the same windows,
        groups = library.data["groups"][index["index_start"].to_numpy(copy=True), 0].numpy()
        assert np.array_equal(a.groups[a.starts], groups)  # in the same order
        # windows over the filled gap, and others
        special[name] = a.states[a.starts + 20] == offline
        chosen = np.flatnonzero(special[name])[:40]
        picks = np.r_[chosen, np.random.default_rng(0).choice(len(index), 40)]
        expected = TimeSeriesDataSet._collate_fn([library[int(i)] for i in picks])
        _assert_same(loader.dataset[picks], expected)
    assert special["train"].any() and not special["train"].all()
    assert not loaders[0].dataset.arrays.servers.any()  # no server_id input: all code 0


def test_epoch_batches_rotate_the_stride_phase() -> None:
    phase = np.tile(np.arange(10), 3)  # 3 series of 10 windows
    sampler = EpochBatches(phase, batch_size=4, stride=3, shuffle=True)
    assert len(sampler) == 2  # phases 1 and 2 have 9 windows: 2 full batches
    torch.manual_seed(0)
    seen: set[int] = set()
    for _ in range(12):
        windows = np.concatenate(list(sampler))
        assert len(windows) == 8 == len(set(windows.tolist()))
        phases = set((phase[windows] % 3).tolist())
        assert len(phases) == 1  # one phase per epoch
        seen |= phases
    assert seen == {0, 1, 2}
    ordered = EpochBatches(phase, batch_size=4, stride=3, shuffle=False)
    assert len(ordered) == 3  # 12 windows at phase 0, last batch kept
    assert np.concatenate(list(ordered)).tolist() == np.flatnonzero(phase % 3 == 0).tolist()
    with pytest.raises(ValueError, match="stride"):
        EpochBatches(phase, batch_size=4, stride=0)
    with pytest.raises(ValueError, match="no windows at stride 11"):
        EpochBatches(phase, batch_size=4, stride=11)  # phase 10 has no window


def test_run_settings_resolve_strides_workers_and_threads() -> None:
    cpu, gpu = Hardware("cpu", 32, 1, "CPU"), Hardware("gpu", 256, 4, "GPU")
    run = run_settings(TrainConfig(), cpu)
    assert (run.loader, run.window_stride, run.val_window_stride) == ("fast", 4, 4)
    assert (run.batch_size, run.num_workers) == (32, 0)
    assert run.threads == max(1, torch.get_num_threads() - 1)  # one core left free
    on_gpu = run_settings(TrainConfig(), gpu)
    assert (on_gpu.window_stride, on_gpu.threads) == (1, torch.get_num_threads())
    library = run_settings(TrainConfig(loader="library", recurrence_inputs=()), cpu)
    assert (library.window_stride, library.num_workers) == (1, 1)
    mixed = run_settings(TrainConfig(window_stride=3, val_window_stride=1, threads=2), cpu)
    assert (mixed.window_stride, mixed.val_window_stride, mixed.threads) == (3, 1, 2)
    bad_ones = [dict(loader="library", window_stride=2), dict(window_stride=0), dict(loader="x")]
    for bad in [*bad_ones, dict(loader="library")]:  # the library cannot build recurrence
        with pytest.raises(ValueError):
            run_settings(TrainConfig(**bad), cpu)


def test_select_training_data_holdout_until_and_max_servers(small_fleet) -> None:
    extra = small_fleet[small_fleet.server_name == "ppgen000"].assign(server_name="ppgen004")
    fleet = pd.concat([small_fleet, extra], ignore_index=True)
    chosen = splits.select_training_data(fleet, "2025-01-08T00:00", holdout=2, max_servers=2)
    left = sorted(set(fleet.server_name) - set(chosen.holdout))
    assert len(chosen.holdout) == 2 and chosen.unused == left[2:]
    assert sorted(chosen.frame.server_name.unique()) == left[:2]
    assert chosen.frame.timestamp.max() == pd.Timestamp("2025-01-07T23:55", tz="UTC")
    assert chosen.until == pd.Timestamp("2025-01-08", tz="UTC")
    naive = fleet.assign(timestamp=fleet.timestamp.dt.tz_localize(None))
    same = splits.select_training_data(naive, "2025-01-08T01:00+01:00")  # 00:00 UTC
    assert same.frame.timestamp.max() == pd.Timestamp("2025-01-07T23:55")
    assert same.holdout == same.unused == [] and same.frame.server_name.nunique() == 5
    with pytest.raises(ValueError, match="5 servers"):
        splits.select_training_data(fleet, holdout=5)
    with pytest.raises(ValueError, match="no training rows"):
        splits.select_training_data(fleet, "2025-01-01")


def test_config_input_layout_reproduces_dataset_batch(trained: Path, small_fleet) -> None:
    loaded = load_artifact(trained)
    frame = _drop_steps(small_fleet, "ppgen002", 700, 20)
    frame = pd.concat([frame, frame[frame.server_name == "ppgen000"].assign(server_name="new")])
    prepared = ds.prepare_frame(frame)
    pf_set = ds.dataset_from_json(loaded.config["dataset"], prepared, predict=True)
    x, _ = next(iter(pf_set.to_dataloader(train=False, batch_size=8)))
    groups = pf_set._categorical_encoders["__group_id__server_id"].classes_vector_
    enc, hor = loaded.config["encoder_length"], loaded.config["horizon"]
    windows = [
        prepared[prepared.server_id == groups[g]].iloc[-(enc + hor) : -hor]
        for g in x["groups"][:, 0]
    ]
    mine = build_inputs(
        loaded.config,
        np.stack([w[list(dc.METRIC_COLUMNS)].to_numpy(np.float32) for w in windows]),
        np.stack([w["state"].to_numpy() for w in windows]),
        [w["server_id"].iloc[0] for w in windows],
        np.array([w["time_idx"].iloc[-1] for w in windows]),
    )
    assert torch.equal(mine["encoder_cont"], x["encoder_cont"])
    assert torch.equal(mine["encoder_cat"], x["encoder_cat"])
    assert all(
        torch.equal(a, b) for a, b in zip(mine["target_scale"], x["target_scale"], strict=True)
    )
    with torch.no_grad():
        expected, actual = loaded.model(x)["prediction"], loaded.model(mine)["prediction"]
    assert all(torch.equal(a, b) for a, b in zip(actual, expected, strict=True))


# --- training ------------------------------------------------------------------------


def test_train_writes_a_complete_artifact(trained: Path, small_fleet) -> None:
    assert sorted(p.name for p in trained.iterdir()) == sorted(ARTIFACT_FILES)
    assert trained.name.startswith("tft_model_")
    latest = trained.parent / "latest"
    assert latest.is_symlink() and str(latest.readlink()) == trained.name
    info = json.loads((trained / "training_info.json").read_text())
    assert info["unique_states"] == sorted(dc.VALID_STATES)
    assert info["servers"] == sorted(small_fleet["server_name"].unique())
    assert info["data_time_range"]["start"].startswith("2025-01-06T00:00:00")
    assert np.isfinite(info["train_loss"]) and np.isfinite(info["val_loss"])
    assert info["epochs_run"] == 1 and "accuracy" in info
    assert {"torch", "lightning", "pytorch-forecasting", "pandas"} <= set(info["library_versions"])
    mapping = json.loads((trained / "server_mapping.json").read_text())
    assert mapping == dc.create_server_mapping(small_fleet["server_name"])
    config = json.loads((trained / "config.json").read_text())
    assert (config["step_seconds"], config["encoder_length"], config["horizon"]) == (300, 24, 6)
    assert config["architecture"]["optimizer_params"] == {"fused": True}
    stride = 1 if torch.cuda.is_available() else 4  # the defaults
    assert [info[k] for k in ("loader", "window_stride", "val_window_stride")] == [
        "fast", stride, stride]  # fmt: skip


def test_trainer_writes_the_held_out_accuracy_table(trained: Path) -> None:
    info = load_artifact(trained).training_info
    table = info["accuracy"]  # no --until: the validation period, from its first step
    assert table["split"].startswith("validation period")
    assert pd.Timestamp(table["cutoff"]) == pd.Timestamp(info["validation_start"])
    assert table["horizons"] == {"30m": 6} and table["every_steps"] == 24  # a 6-step model
    everyone = table["groups"]["all servers"]
    first = 864 - 173  # 3 days; the last 20 % (173 steps) validate
    assert everyone["origins"] == 4 * len(range(first, 864 - 6, 24)) and everyone["servers"] == 4
    assert set(everyone["per_metric"]) == set(dc.METRIC_COLUMNS)
    for metric, scores in everyone["per_metric"].items():
        assert set(scores["30m"]) == {"tft", "last", "snaive"}, metric
        assert all(np.isfinite(v) for v in scores["30m"].values()), metric
    assert list(everyone["mean_over_metrics"]) == ["30m"]


def test_training_is_seeded(trained: Path, small_fleet, tmp_path: Path) -> None:
    again = train(small_fleet, tmp_path, TrainConfig(**TINY))
    first, second = load_artifact(trained).model, load_artifact(again).model
    assert not torch.are_deterministic_algorithms_enabled()  # not leaked by lightning
    assert torch.utils.deterministic.fill_uninitialized_memory  # restored after the fit
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_best_state_keeps_a_copy_of_the_best_weights() -> None:
    module = torch.nn.Linear(2, 1)
    best = BestState()
    trainer = SimpleNamespace(sanity_checking=False, current_epoch=0, callback_metrics={})
    for epoch, loss in enumerate([3.0, 2.0, 2.5]):
        trainer.current_epoch, trainer.callback_metrics["val_loss"] = epoch, torch.tensor(loss)
        if epoch == 1:
            kept = module.weight.detach().clone()
        best.on_validation_end(trainer, module)
        with torch.no_grad():
            module.weight.add_(1.0)
    assert (best.best_epoch, best.best_loss) == (1, 2.0)
    assert torch.equal(best.state["weight"], kept)


def test_hardware_comes_from_gpu_profiles() -> None:
    hardware = detect_hardware()
    expected = "gpu" if torch.cuda.is_available() else "cpu"
    assert hardware.accelerator == expected and hardware.batch_size > 0


def test_gpu_profiles_import_failure_falls_back_to_cpu(monkeypatch, caplog) -> None:
    monkeypatch.setitem(sys.modules, "gpu_profiles", None)
    with caplog.at_level(logging.WARNING, logger="training.tft_trainer"):
        hardware = detect_hardware()
    assert hardware.accelerator == "cpu" and hardware.profile == "CPU (fallback)"
    assert "gpu_profiles unavailable" in caplog.text


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.assign(cpu_pct=1.0), "cpu_pct: deprecated column"),
        (
            lambda f: f.assign(cpu_user_pct=f.cpu_user_pct.where(f.index != 3, 150.0)),
            "outside [0, 100]",
        ),
        (lambda f: f.assign(state=f.state.where(f.index != 7, "sleeping")), "state: invalid value"),
    ],
)
def test_trainer_refuses_contract_invalid_data(
    small_fleet, tmp_path, caplog, change, message
) -> None:
    bad = change(small_fleet)
    with pytest.raises(dc.ContractError, match=message.replace("[", r"\[")):
        train(bad, tmp_path / "models", TrainConfig(**TINY))
    bad.to_parquet(tmp_path / "bad.parquet")
    with caplog.at_level(logging.ERROR, logger="training.tft_trainer"):
        status = main(
            ["--data", str(tmp_path / "bad.parquet"), "--out", str(tmp_path / "m"), *TINY_ARGS]
        )
    assert status == 2 and message in caplog.text
    assert not (tmp_path / "models").exists() and not (tmp_path / "m").exists()


def test_main_trains_from_parquet_until_and_holdout(small_fleet, tmp_path: Path) -> None:
    small_fleet.to_parquet(tmp_path / "metrics.parquet")
    data = ["--data", str(tmp_path / "metrics.parquet"), "--out", str(tmp_path / "models")]
    options = ["--until", "2025-01-08T12:00", "--holdout-servers", "1", "--window-stride", "2"]
    assert main([*data, *TINY_ARGS, *options, "--threads", "1"]) == 0
    loaded = load_artifact(tmp_path / "models")
    info = loaded.training_info
    assert info["command"].endswith(" ".join([*TINY_ARGS, *options, "--threads", "1"]))
    assert loaded.config["architecture"]["hidden_size"] == 8 and not loaded.model.training
    assert len(info["holdout_servers"]) == 1 and info["unused_servers"] == []
    assert info["servers"] == sorted({f"ppgen00{i}" for i in range(4)} - {*info["holdout_servers"]})
    assert info["until"] == "2025-01-08T12:00:00+00:00"
    assert pd.Timestamp(info["data_time_range"]["end"]) == pd.Timestamp("2025-01-08T11:55Z")
    assert (info["loader"], info["window_stride"], info["val_window_stride"]) == ("fast", 2, 2)
    assert info["threads"] == 1 and info["train_config"]["holdout_servers"] == 1
    # 720 steps: 576 for training (547 windows of 30 steps per server), every 2nd window
    # (273 or 274 per server), full batches of 32; validation: 139 windows, every 2nd
    assert info["train_windows"] == 3 * 547 and info["windows_per_epoch"]["train"] == 25 * 32
    assert info["val_windows"] == 3 * 139 and info["windows_per_epoch"]["val"] == 3 * 70
    assert info["holdout_servers"][0] not in loaded.server_mapping["name_to_id"]
    accuracy = info["accuracy"]  # scored from --until on (step 720), held-out server alone too
    assert accuracy["split"].startswith("rows from --until on")
    assert accuracy["cutoff"] == info["until"]
    assert accuracy["groups"]["all servers"]["origins"] == 4 * len(range(720, 864 - 6, 24))
    assert accuracy["groups"]["unseen servers"]["servers"] == 1


def test_library_loader_trains(small_fleet, tmp_path: Path) -> None:
    config = TrainConfig(**{**TINY, "loader": "library", "limit_train_batches": 1})
    info = load_artifact(train(small_fleet, tmp_path, config)).training_info
    assert (info["loader"], info["window_stride"], info["num_workers"]) == ("library", 1, 0)
    assert info["windows_per_epoch"]["train"] == info["train_windows"] // 32 * 32
    assert np.isfinite(info["val_loss"])


def test_main_reports_unreadable_or_too_short_data(small_fleet, tmp_path: Path, caplog) -> None:
    with caplog.at_level(logging.ERROR):
        assert main(["--data", str(tmp_path / "missing.parquet"), "--out", str(tmp_path)]) == 1
    assert "cannot read training data" in caplog.text
    small_fleet.to_parquet(tmp_path / "short.parquet")
    args = ["--data", str(tmp_path / "short.parquet"), "--out", str(tmp_path / "models")]
    with caplog.at_level(logging.ERROR):
        assert main([*args, "--encoder-length", "800", "--horizon", "6"]) == 1
    assert "no server has 806 steps before the validation cutoff" in caplog.text


def test_calendar_features_follow_the_artifacts_zone_and_skip_month() -> None:
    from training.inputs import window_times

    config = {"horizon": 1, "step_seconds": 300, "time_features": list(ds.MODEL_TIME_FEATURES)}
    noon_utc = np.array([int(pd.Timestamp("2025-03-05T12:00Z").timestamp()) // 300])
    utc = window_times({**config, "time_zone": "UTC"}, noon_utc, 1)[0, 0]
    tokyo = window_times({**config, "time_zone": "Asia/Tokyo"}, noon_utc, 1)[0, 0]
    hour = list(ds.MODEL_TIME_FEATURES).index("hour")
    scale = ds.TIME_FEATURE_SCALING["hour"]
    assert utc[hour] * scale[1] + scale[0] == pytest.approx(12)
    assert tokyo[hour] * scale[1] + scale[0] == pytest.approx(21)  # UTC+9
    assert "month" not in ds.MODEL_TIME_FEATURES and len(utc) == len(ds.MODEL_TIME_FEATURES)


def test_trainer_records_a_time_zone_and_the_rules(small_fleet, tmp_path: Path) -> None:
    small_fleet.to_parquet(tmp_path / "metrics.parquet")
    data = ["--data", str(tmp_path / "metrics.parquet"), "--out", str(tmp_path / "models")]
    zone = ["--time-zone", "America/New_York", "--threads", "1", "--window-stride", "8"]
    assert main([*data, *TINY_ARGS, *zone]) == 0
    config = load_artifact(tmp_path / "models").config
    assert config["time_zone"] == "America/New_York"
    assert list(config["deterministic_metrics"]) == ["uptime_days"]
    assert config["inputs"]["target_normalizers"][0]["anchor"] == "last"
    weights = config["loss"]["params"]["weights"]
    assert weights[dc.METRIC_COLUMNS.index("uptime_days")] == 0  # left to its rule


def test_a_bad_time_zone_is_refused_by_name(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--data", "x.parquet", "--time-zone", "Mars/Olympus"])
    assert "not a time zone: 'Mars/Olympus'" in capsys.readouterr().err


def test_trainer_saves_and_serves_recurrence_inputs(tmp_path: Path) -> None:
    """--recurrence-inputs: declared in config.json, reloaded, served by the daemon's
    forecaster; the recorded command repeats the option."""
    from inference.forecast import TFTForecaster
    from tests.conftest import synthetic_fleet

    synthetic_fleet(n_servers=2, days=4.0).to_parquet(tmp_path / "metrics.parquet")
    data = ["--data", str(tmp_path / "metrics.parquet"), "--out", str(tmp_path / "models")]
    geometry = ["--encoder-length", "288", "--horizon", "96", "--threads", "1"]
    options = ["--recurrence-inputs", "summaries", "yesterday"]
    args = [*TINY_ARGS, *geometry, "--limit-train-batches", "1", *options]
    assert main([*data, *args]) == 0
    loaded = load_artifact(tmp_path / "models")
    kinds = [e["kind"] for e in loaded.config["inputs"]["reals"].values()]
    assert kinds.count("window_summary") == 39 and kinds.count("yesterday") == 13
    assert loaded.training_info["train_config"]["recurrence_inputs"] == ["summaries", "yesterday"]
    assert loaded.training_info["command"].endswith("summaries yesterday")
    values = np.random.default_rng(0).uniform(1, 60, (3, 288, 14)).astype(np.float32)
    states = np.zeros((3, 288), dtype=np.int8)
    out = TFTForecaster(loaded).forecast(values, states, ["a", "b", "c"], np.full(3, 5_900_000))
    assert out.shape == (3, 96, 14, 3) and np.isfinite(out).all()


def test_a_short_encoder_with_yesterday_is_refused_with_the_fix(
    small_fleet, tmp_path: Path, caplog
) -> None:
    small_fleet.to_parquet(tmp_path / "metrics.parquet")
    data = ["--data", str(tmp_path / "metrics.parquet"), "--out", str(tmp_path / "models")]
    default = [a for a in TINY_ARGS if a not in ("--recurrence-inputs", "none")]
    with caplog.at_level(logging.ERROR):
        assert main([*data, *default]) == 1  # the default asks for yesterday
    assert "yesterday inputs need an encoder of at least one day (288 steps), got 24" in caplog.text
    assert "--recurrence-inputs summaries (or none)" in caplog.text
    assert main([*data, *default, "--recurrence-inputs", "summaries"]) == 0
    kinds = {
        e["kind"] for e in load_artifact(tmp_path / "models").config["inputs"]["reals"].values()
    }
    assert "window_summary" in kinds and "yesterday" not in kinds
