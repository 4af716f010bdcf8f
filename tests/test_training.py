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
from pytorch_forecasting import TimeSeriesDataSet

import data_contract as dc
from training import dataset as ds
from training.artifact import ARTIFACT_FILES, load_artifact
from training.fitting import BestState, collate_with_unknown_servers
from training.inputs import build_inputs
from training.model import build_model
from training.normalizers import MetricNormalizer
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
)
TINY_ARGS = [
    "--epochs", "1", "--hidden-size", "8", "--encoder-length", "24", "--horizon", "6",
    "--batch-size", "32", "--num-workers", "0", "--limit-train-batches", "2",
    "--limit-val-batches", "1", "--no-progress-bar",
]  # fmt: skip
_TRAINED: dict[str, Path] = {}


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
    duplicate = frame.iloc[[5]].assign(cpu_user_pct=99.0)
    prepared = ds.prepare_frame(pd.concat([frame, duplicate], ignore_index=True))
    reference = ds.prepare_frame(small_fleet)
    assert prepared["time_idx"].tolist() == reference["time_idx"].tolist()
    assert prepared.loc[5, "cpu_user_pct"] == 99.0  # the later row wins
    assert prepared["timestamp"].dt.tz is None


def test_real_lengths_dataset_and_forward(small_fleet: pd.DataFrame) -> None:
    prepared = ds.prepare_frame(small_fleet)
    params = ds.dataset_parameters()  # 288 / 96
    train_set, val_set = ds.build_datasets(prepared, params, val_fraction=0.2)
    cutoff = ds.split_index(prepared, 0.2, ds.HORIZON)
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


def test_encoders_know_all_states_and_map_unseen_servers(small_fleet) -> None:
    prepared = ds.prepare_frame(small_fleet)
    train_set, _ = ds.build_datasets(prepared, ds.dataset_parameters(24, 6), 0.2)
    states = train_set._categorical_encoders["state"]
    assert set(states.classes_) == {"nan", *dc.VALID_STATES}
    new = prepared[prepared.server_name == "ppgen000"].assign(
        server_name="brand-new", server_id="999999999", state="heavy_load"
    )
    other = TimeSeriesDataSet.from_dataset(train_set, new, predict=True, stop_randomization=True)
    x, _ = next(iter(other.to_dataloader(train=False, batch_size=1)))
    position = other.flat_categoricals.index
    assert int(x["encoder_cat"][0, 0, position("server_id")]) == 0
    assert int(x["encoder_cat"][0, 0, position("state")]) == states.classes_["heavy_load"] > 0


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


def test_loss_weights_average_one_and_favour_small_scales(small_fleet) -> None:
    weights = ds.target_loss_weights(ds.prepare_frame(small_fleet))
    assert len(weights) == 14 and np.mean(weights) == pytest.approx(1.0)
    named = dict(zip(dc.METRIC_COLUMNS, weights, strict=True))
    assert named["cpu_user_pct"] < named["swap_used_pct"]  # std ~11 vs flat (floor 1)


def test_unknown_server_masking(small_fleet) -> None:
    prepared = ds.prepare_frame(small_fleet)
    train_set, _ = ds.build_datasets(prepared, ds.dataset_parameters(24, 6), 0.2)
    items = [train_set[i] for i in range(8)]
    position = train_set.flat_categoricals.index("server_id")
    hidden, _ = collate_with_unknown_servers(items, position, rate=1.0)
    kept, _ = collate_with_unknown_servers(items, position, rate=0.0)
    assert (hidden["encoder_cat"][..., position] == 0).all()
    assert (hidden["decoder_cat"][..., position] == 0).all()
    assert (kept["encoder_cat"][..., position] > 0).all()


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


def test_training_is_seeded(trained: Path, small_fleet, tmp_path: Path) -> None:
    again = train(small_fleet, tmp_path, TrainConfig(**TINY))
    first, second = load_artifact(trained).model, load_artifact(again).model
    assert not torch.are_deterministic_algorithms_enabled()  # not leaked by lightning
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


def test_main_trains_from_parquet(small_fleet, tmp_path: Path) -> None:
    small_fleet.to_parquet(tmp_path / "metrics.parquet")
    args = [
        "--data",
        str(tmp_path / "metrics.parquet"),
        "--out",
        str(tmp_path / "models"),
        *TINY_ARGS,
    ]
    assert main(args) == 0
    loaded = load_artifact(tmp_path / "models")
    assert loaded.training_info["command"].endswith(" ".join(TINY_ARGS))
    assert loaded.config["architecture"]["hidden_size"] == 8 and not loaded.model.training


def test_main_reports_unreadable_or_too_short_data(small_fleet, tmp_path: Path, caplog) -> None:
    with caplog.at_level(logging.ERROR):
        assert main(["--data", str(tmp_path / "missing.parquet"), "--out", str(tmp_path)]) == 1
    assert "cannot read training data" in caplog.text
    small_fleet.to_parquet(tmp_path / "short.parquet")
    args = ["--data", str(tmp_path / "short.parquet"), "--out", str(tmp_path / "models")]
    with caplog.at_level(logging.ERROR):
        assert main([*args, "--encoder-length", "800", "--horizon", "6"]) == 1
    assert "no server has 806 steps before the validation cutoff" in caplog.text
