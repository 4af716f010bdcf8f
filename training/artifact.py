"""The model artifact: writing it, finding it, validating it and loading it (no pickle).

models/tft_model_YYYYMMDD_HHMMSS/
    model.safetensors          weights (safetensors.torch.save_model: TFT shares tensors)
    config.json                architecture, loss, normalisers, encoders, input layout
    training_info.json         states, servers, time range, losses, versions, command
    server_mapping.json        data_contract.create_server_mapping of the training servers
    data_contract_version.txt  CONTRACT_VERSION
models/latest                  relative symlink to the newest (or a text file naming it)

Written durably (durable.py): the files in a temporary directory, fsynced, renamed into
place, then latest swapped; training_info.json is replaced with write_atomically.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import safetensors.torch
from pytorch_forecasting import TemporalFusionTransformer
from safetensors import SafetensorError

from data_contract import CONTRACT_VERSION, METRIC_COLUMNS, TIME_FEATURES, VALID_STATES
from durable import point_link, publish_directory, write_atomically
from training.codec import CodecError, decode
from training.model import model_from_json

logger = logging.getLogger(__name__)

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
TRAINING_INFO = "training_info.json"
SERVER_MAPPING = "server_mapping.json"
CONTRACT_FILE = "data_contract_version.txt"
ARTIFACT_FILES = (WEIGHTS, CONFIG, TRAINING_INFO, SERVER_MAPPING, CONTRACT_FILE)
LATEST = "latest"
PREFIX = "tft_model_"


class ArtifactError(ValueError):
    """An artifact that is missing, corrupt or incompatible with this code/contract."""


@dataclass
class LoadedModel:
    """A validated artifact: the network in eval mode plus its parsed JSON files."""

    model: TemporalFusionTransformer
    config: dict[str, Any]
    training_info: dict[str, Any]
    server_mapping: dict[str, dict[str, str]]
    name: str
    path: Path


# --- writing -------------------------------------------------------------------------


def _json_text(data: Any) -> str:
    return json.dumps(data, indent=2, allow_nan=False) + "\n"


def _write_json(path: Path, data: Any) -> None:
    path.write_text(_json_text(data), encoding="utf-8")


def new_artifact_dir(out_dir: Path, now: datetime | None = None) -> Path:
    """A fresh models/tft_model_YYYYMMDD_HHMMSS path (suffixed _2, _3... if taken)."""
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%d_%H%M%S")
    candidate, n = out_dir / f"{PREFIX}{stamp}", 1
    while candidate.exists() or (out_dir / f".{candidate.name}.tmp").exists():
        n += 1
        candidate = out_dir / f"{PREFIX}{stamp}_{n}"
    return candidate


def save_artifact(
    out_dir: Path | str,
    model: TemporalFusionTransformer,
    config: dict[str, Any],
    training_info: dict[str, Any],
    server_mapping: dict[str, dict[str, str]],
) -> Path:
    """Write the five files into a new directory atomically, then point latest at it."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    final = new_artifact_dir(out_dir)
    tmp = out_dir / f".{final.name}.tmp"
    tmp.mkdir()
    _write_json(tmp / CONFIG, config)
    safetensors.torch.save_model(model, str(tmp / WEIGHTS), metadata={"format": "pt"})
    (tmp / WEIGHTS).chmod((tmp / CONFIG).stat().st_mode & 0o777)  # same mode as the JSON
    _write_json(tmp / TRAINING_INFO, training_info)
    _write_json(tmp / SERVER_MAPPING, server_mapping)
    (tmp / CONTRACT_FILE).write_text(CONTRACT_VERSION + "\n", encoding="utf-8")
    publish_directory(tmp, final)  # each file and the directory fsynced, then renamed
    update_latest(out_dir, final.name)
    logger.info("saved model artifact %s", final)
    return final


def write_training_info(directory: Path, training_info: dict[str, Any]) -> None:
    """Replace an artifact's training_info.json durably (e.g. to add its accuracy)."""
    write_atomically(directory / TRAINING_INFO, _json_text(training_info))


def update_latest(out_dir: Path, name: str) -> None:
    """Point out_dir/latest at ``name`` durably: a relative symlink, else (no symlinks
    on this file system) a text file naming it."""
    link = out_dir / LATEST
    if link.is_dir() and not link.is_symlink():
        raise ArtifactError(f"{link} is a real directory; refusing to replace it")
    point_link(link, name)


# --- finding and validating ----------------------------------------------------------


def resolve_artifact(path: Path | str) -> Path:
    """The artifact directory for a directory, a latest symlink, a latest text file, or a
    models directory that contains latest."""
    path = Path(path)
    if path.is_dir() and not (path / CONFIG).exists() and (path / LATEST).exists():
        path = path / LATEST
    if path.is_file():
        name = path.read_text(encoding="utf-8").strip()
        if not name or "/" in name or "\\" in name or name.startswith("."):
            raise ArtifactError(f"{path}: expected a model directory name, got {name!r:.80}")
        path = path.parent / name
    if not path.is_dir():
        raise ArtifactError(f"{path}: no model artifact directory there")
    return path.resolve()


def _read_json(directory: Path, name: str) -> Any:
    try:
        return json.loads((directory / name).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{name}: unreadable or corrupt JSON in {directory}: {exc}") from exc


def _require(ok: bool, name: str, message: str) -> None:
    if not ok:
        raise ArtifactError(f"{name}: {message}")


def _check_files(directory: Path) -> None:
    missing = [name for name in ARTIFACT_FILES if not (directory / name).is_file()]
    _require(not missing, ", ".join(missing), f"missing from model artifact {directory}")
    version = (directory / CONTRACT_FILE).read_text(encoding="utf-8").strip()
    _require(
        version == CONTRACT_VERSION,
        CONTRACT_FILE,
        f"model built for data contract {version!r}, this code implements {CONTRACT_VERSION!r}",
    )


def _check_states(info: Any) -> None:
    _require(isinstance(info, dict), TRAINING_INFO, "must be a JSON object")
    states = info.get("unique_states")
    _require(isinstance(states, list), TRAINING_INFO, "unique_states missing")
    _require(
        set(states) == set(VALID_STATES),
        TRAINING_INFO,
        f"model trained with {len(set(states))} states {sorted(set(states))}, "
        f"contract requires {len(VALID_STATES)}: {sorted(VALID_STATES)}",
    )


def _check_columns(config: Any) -> None:
    _require(isinstance(config, dict), CONFIG, "must be a JSON object")
    version = config.get("contract_version")
    _require(
        version == CONTRACT_VERSION,
        CONFIG,
        f"contract_version is {version!r}, this code implements {CONTRACT_VERSION!r}",
    )
    dataset = config.get("dataset", {})
    expected = {
        "targets": (config.get("targets"), METRIC_COLUMNS),
        "dataset.target": (dataset.get("target"), METRIC_COLUMNS),
        "dataset.time_varying_unknown_reals": (
            dataset.get("time_varying_unknown_reals"),
            METRIC_COLUMNS,
        ),
        "dataset.time_varying_known_reals": (
            dataset.get("time_varying_known_reals"),
            config.get("time_features"),
        ),
    }
    for key, (found, wanted) in expected.items():
        _require(
            found == list(wanted or []),
            CONFIG,
            f"{key} is {found!r}, data contract {CONTRACT_VERSION} requires {wanted!r}",
        )
    features = config.get("time_features")
    _require(
        isinstance(features, list) and [f for f in TIME_FEATURES if f in features] == features,
        CONFIG,
        f"time_features is {features!r}: must be contract time features {list(TIME_FEATURES)} "
        "(a subset, in that order)",
    )


def _check_mapping(mapping: Any) -> None:
    ok = isinstance(mapping, dict) and all(
        isinstance(mapping.get(k), dict) for k in ("name_to_id", "id_to_name")
    )
    _require(ok, SERVER_MAPPING, "must hold 'name_to_id' and 'id_to_name' objects")
    inverse = {v: k for k, v in mapping["name_to_id"].items()}
    _require(inverse == mapping["id_to_name"], SERVER_MAPPING, "the two maps do not match")


def validate_artifact(directory: Path) -> tuple[dict, dict, dict]:
    """validate_model_compatibility of the spec, plus file integrity; returns the JSONs."""
    _check_files(directory)
    config = _read_json(directory, CONFIG)
    info = _read_json(directory, TRAINING_INFO)
    mapping = _read_json(directory, SERVER_MAPPING)
    _check_states(info)
    _check_columns(config)
    _check_mapping(mapping)
    return config, info, mapping


# --- loading -------------------------------------------------------------------------


def _build_model(config: dict[str, Any]) -> TemporalFusionTransformer:
    _require(
        config.get("model_class") == "TemporalFusionTransformer", CONFIG, "unknown model_class"
    )
    try:
        loss = decode(config["loss"])
        output_transformer = decode(config["output_transformer"])
        decode_dataset_objects(config["dataset"])
        return model_from_json(config["architecture"], loss, output_transformer)
    except CodecError as exc:
        raise ArtifactError(f"{CONFIG}: {exc}") from exc
    except (KeyError, TypeError, ValueError, AssertionError) as exc:
        raise ArtifactError(f"{CONFIG}: cannot rebuild the model: {exc!r}") from exc


def decode_dataset_objects(dataset: dict[str, Any]) -> None:
    """Decode every encoded object of the dataset parameters (checks the allow-list)."""
    decode(dataset["target_normalizer"])
    for spec in [*dataset["categorical_encoders"].values(), *dataset["scalers"].values()]:
        if spec is not None:
            decode(spec)


def load_artifact(path: Path | str, device: str = "cpu") -> LoadedModel:
    """Validate, rebuild and load an artifact; raises ArtifactError naming file and problem."""
    directory = resolve_artifact(path)
    config, info, mapping = validate_artifact(directory)
    model = _build_model(config)
    try:
        safetensors.torch.load_model(model, str(directory / WEIGHTS), strict=True, device=device)
    except (RuntimeError, SafetensorError, OSError) as exc:
        raise ArtifactError(f"{WEIGHTS}: weights do not fit the model in {CONFIG}: {exc}") from exc
    model.to(device).eval()
    return LoadedModel(model, config, info, mapping, directory.name, directory)
