"""The artifact: save/load round trip, latest pointer, validation, codec, no pickle."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import safetensors
import torch
from pytorch_forecasting.data.encoders import (
    EncoderNormalizer,
    GroupNormalizer,
    MultiNormalizer,
    NaNLabelEncoder,
    TorchNormalizer,
)
from pytorch_forecasting.metrics import MultiLoss, QuantileLoss

import data_contract as dc
from training import dataset as ds
from training import load_artifact as package_load_artifact
from training import splits
from training.artifact import (
    ARTIFACT_FILES,
    ArtifactError,
    LoadedModel,
    load_artifact,
    resolve_artifact,
    save_artifact,
    write_training_info,
)
from training.codec import CodecError, decode, encode
from training.metadata import build_config, build_training_info
from training.model import build_model
from training.normalizers import MetricNormalizer

LATEST = Path(__file__).resolve().parents[1] / "models" / "latest"


def make_artifact(frame: pd.DataFrame, out_dir: Path) -> tuple[Path, torch.nn.Module, dict]:
    """An untrained (randomly perturbed) tiny model saved as a real artifact."""
    prepared = ds.prepare_frame(frame)
    train_set, val_set = splits.build_datasets(prepared, ds.dataset_parameters(24, 6), 0.2)
    model = build_model(train_set, hidden_size=8, hidden_continuous_size=4).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    config = build_config(model, train_set, "UTC", ds.STEP_SECONDS)
    info = build_training_info(frame, train_set, val_set, {}, {"epochs": 0})
    mapping = dc.create_server_mapping(frame["server_name"])
    path = save_artifact(out_dir, model, config, info, mapping)
    x, _ = next(iter(val_set.to_dataloader(train=False, batch_size=8)))
    return path, model, x


_BASE: dict[str, tuple] = {}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def artifact(small_fleet, tmp_path, tmp_path_factory) -> tuple[Path, torch.nn.Module, dict]:
    """A fresh copy (models/<name> + latest) of one artifact built once per session."""
    if "base" not in _BASE:
        _BASE["base"] = make_artifact(small_fleet, tmp_path_factory.mktemp("base") / "models")
    base, model, x = _BASE["base"]
    copy = tmp_path / "models" / base.name
    shutil.copytree(base, copy)
    (copy.parent / "latest").symlink_to(base.name, target_is_directory=True)
    return copy, model, x


def _edit_json(name: str, edit: Callable[[dict], None]) -> Callable[[Path], None]:
    def apply(directory: Path) -> None:
        data = json.loads((directory / name).read_text())
        edit(data)
        (directory / name).write_text(json.dumps(data))

    return apply


def _set(path: list[str], value: object) -> Callable[[dict], None]:
    def edit(data: dict) -> None:
        for key in path[:-1]:
            data = data[key]
        data[path[-1]] = value

    return edit


# --- round trip and discovery --------------------------------------------------------


def test_reloaded_model_predicts_identically(artifact) -> None:
    path, model, x = artifact
    loaded = load_artifact(path)
    assert isinstance(loaded, LoadedModel) and not loaded.model.training
    assert loaded.name == path.name and loaded.path == path.resolve()
    with torch.no_grad():
        expected, actual = model(x)["prediction"], loaded.model(x)["prediction"]
    assert len(actual) == 14
    assert all(torch.equal(a, e) for a, e in zip(actual, expected, strict=True))
    assert loaded.server_mapping["name_to_id"]["ppgen000"] == dc.encode_server_name("ppgen000")
    assert package_load_artifact is load_artifact


def test_artifact_holds_exactly_five_pickle_free_files(artifact) -> None:
    path, _, _ = artifact
    assert sorted(p.name for p in path.iterdir()) == sorted(ARTIFACT_FILES)
    for file in path.iterdir():
        head = file.read_bytes()[:4]
        assert not head.startswith(b"\x80") and not head.startswith(b"PK")  # pickle / torch zip
    for name in ("config.json", "training_info.json", "server_mapping.json"):
        json.loads((path / name).read_text())
    with safetensors.safe_open(str(path / "model.safetensors"), framework="pt") as weights:
        assert len(list(weights.keys())) > 10
    assert (path / "data_contract_version.txt").read_text().strip() == dc.CONTRACT_VERSION


def test_latest_accepts_symlink_text_file_and_models_dir(artifact, small_fleet) -> None:
    path, _, _ = artifact
    models = path.parent
    assert (models / "latest").is_symlink() and not Path(
        (models / "latest").readlink()
    ).is_absolute()
    newer, _, _ = make_artifact(small_fleet, models)
    assert newer != path and resolve_artifact(models / "latest") == newer.resolve()
    assert resolve_artifact(models) == newer.resolve() == resolve_artifact(newer)
    (models / "latest").unlink()
    (models / "latest").write_text(path.name + "\n")
    assert resolve_artifact(models / "latest") == path.resolve()
    assert load_artifact(models).name == path.name
    (models / "latest").write_text("../../etc\n")
    with pytest.raises(ArtifactError, match="latest"):
        resolve_artifact(models / "latest")


def test_latest_falls_back_to_text_file_without_symlinks(
    small_fleet, tmp_path, monkeypatch
) -> None:
    def no_symlinks(self, *args, **kwargs):
        raise OSError("symlinks not supported")

    monkeypatch.setattr(Path, "symlink_to", no_symlinks)
    path, _, _ = make_artifact(small_fleet, tmp_path)
    latest = tmp_path / "latest"
    assert latest.is_file() and latest.read_text().strip() == path.name
    assert load_artifact(latest).name == path.name


def test_the_shipped_model_carries_its_held_out_accuracy() -> None:
    info = load_artifact(LATEST).training_info
    table = info["accuracy"]  # python -m training.heldout ... --write (see the README)
    assert table["split"].startswith("rows from --until on") and table["cutoff"] == info["until"]
    assert table["horizons"] == {"30m": 6, "1h": 12, "8h": 96} and table["every_steps"] == 24
    groups = table["groups"]
    assert (groups["all servers"]["servers"], groups["unseen servers"]["servers"]) == (120, 10)
    for group in groups.values():
        assert set(group["per_metric"]) == set(dc.METRIC_COLUMNS) and group["origins"] > 0
        for scores in group["mean_over_metrics"].values():
            assert all(isinstance(scores[k], float) for k in ("tft", "last", "snaive"))


def test_training_info_is_replaced_atomically(artifact) -> None:
    path, _, _ = artifact
    info = load_artifact(path).training_info
    write_training_info(path, info | {"accuracy": {"split": "test"}})
    assert load_artifact(path).training_info["accuracy"] == {"split": "test"}
    assert sorted(p.name for p in path.iterdir()) == sorted(ARTIFACT_FILES)


# --- validation ----------------------------------------------------------------------

TAMPERING = {
    "wrong contract version": (
        lambda d: (d / "data_contract_version.txt").write_text("1.0.0\n"),
        "data_contract_version.txt",
        "1.0.0",
    ),
    "seven states": (
        _edit_json("training_info.json", _set(["unique_states"], sorted(dc.VALID_STATES)[:7])),
        "training_info.json",
        "7 states",
    ),
    "wrong targets": (
        _edit_json("config.json", _set(["targets"], ["cpu_pct", *dc.METRIC_COLUMNS[1:]])),
        "config.json",
        "targets",
    ),
    "wrong time features": (
        _edit_json("config.json", _set(["dataset", "time_varying_known_reals"], ["hour"])),
        "config.json",
        "time_varying_known_reals",
    ),
    "missing server mapping": (
        lambda d: (d / "server_mapping.json").unlink(),
        "server_mapping.json",
        "missing",
    ),
    "bad server mapping": (
        _edit_json("server_mapping.json", _set(["id_to_name"], {"1": "x"})),
        "server_mapping.json",
        "do not match",
    ),
    "corrupt config": (
        lambda d: (d / "config.json").write_text('{"targets": ['),
        "config.json",
        "corrupt JSON",
    ),
    "missing weights": (
        lambda d: (d / "model.safetensors").unlink(),
        "model.safetensors",
        "missing",
    ),
    "corrupt weights": (
        lambda d: (d / "model.safetensors").write_bytes(b"not a safetensors file"),
        "model.safetensors",
        "weights",
    ),
    "weight shape mismatch": (
        _edit_json("config.json", _set(["architecture", "hidden_size"], 16)),
        "model.safetensors",
        "size mismatch",
    ),
    "disallowed class": (
        _edit_json("config.json", _set(["loss", "__class__"], "os.system")),
        "config.json",
        "'os.system' is not in the allow-list",
    ),
    "disallowed nested class": (
        _edit_json(
            "config.json", _set(["dataset", "scalers", "cpu_user_pct_center", "__class__"], "Popen")
        ),
        "config.json",
        "'Popen' is not in the allow-list",
    ),
}


@pytest.mark.parametrize("case", sorted(TAMPERING))
def test_tampered_artifact_is_refused(artifact, case: str) -> None:
    path, _, _ = artifact
    tamper, filename, detail = TAMPERING[case]
    tamper(path)
    with pytest.raises(ArtifactError) as caught:
        load_artifact(path)
    assert str(caught.value).startswith(filename) or filename in str(caught.value)
    assert detail in str(caught.value)


def test_missing_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="no model artifact"):
        load_artifact(tmp_path / "nowhere")


# --- codec ---------------------------------------------------------------------------


CODEC_CASES = {
    "NaNLabelEncoder": lambda: NaNLabelEncoder(add_nan=True, warn=False).fit(
        pd.Series(["b", "a", "c"])
    ),
    "TorchNormalizer": lambda: TorchNormalizer(transformation="log1p").fit(torch.rand(20)),
    "EncoderNormalizer": lambda: EncoderNormalizer(max_length=5).fit(torch.rand(20)),
    "MetricNormalizer": lambda: MetricNormalizer("robust", min_scale=0.5).fit(torch.rand(20)),
    "GroupNormalizer": lambda: GroupNormalizer(groups=["g"]).fit(
        pd.Series([1.0, 2.0, 4.0, 8.0]), pd.DataFrame({"g": ["a", "a", "b", "b"]})
    ),
    "MultiNormalizer": lambda: MultiNormalizer([MetricNormalizer(), TorchNormalizer()]),
    "MultiLoss": lambda: MultiLoss([QuantileLoss([0.1, 0.5, 0.9])] * 2, weights=[0.5, 2.0]),
}


@pytest.mark.parametrize("name", sorted(CODEC_CASES))
def test_codec_round_trip(name: str) -> None:
    original = CODEC_CASES[name]()
    spec = json.loads(json.dumps(encode(original)))
    rebuilt = decode(spec)
    assert type(rebuilt) is type(original)
    assert encode(rebuilt) == spec
    values = pd.Series(["a", "c", "zzz"]) if name == "NaNLabelEncoder" else None
    if values is not None:
        assert rebuilt.transform(values).tolist() == original.transform(values).tolist()
    if name == "GroupNormalizer":
        frame = pd.DataFrame({"g": ["a", "b", "new"]})
        assert (rebuilt.get_norm(frame) == original.get_norm(frame)).all()


def test_codec_refuses_unknown_classes_state_and_callables() -> None:
    with pytest.raises(CodecError, match="allow-list"):
        encode(torch.nn.Linear(2, 2))
    with pytest.raises(CodecError, match="'Evil' is not in the allow-list"):
        decode({"__class__": "Evil", "params": {}, "state": {}})
    with pytest.raises(CodecError, match="unexpected state"):
        decode({"__class__": "TorchNormalizer", "params": {}, "state": {"__dict__": 1}})
    with pytest.raises(CodecError, match="named transformations"):
        encode(TorchNormalizer(transformation={"forward": torch.exp, "reverse": torch.log}))
    with pytest.raises(CodecError, match="dtype"):
        decode({"__class__": "TorchNormalizer", "params": {}, "state": {
            "center_": {"__ndarray__": "object", "shape": [], "data": 1}}})  # fmt: skip
