"""Loading the forecaster: the daemon refuses a model whose geometry it cannot serve,
naming the field; the forecast batch size follows the setting, else the GPU profile."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import torch

import gpu_profiles
from inference.loading import (
    CPU_FORECAST_BATCH,
    ModelLoadError,
    forecast_batch_size,
    load_forecaster,
    reload_path,
)
from inference.settings import DaemonSettings

LATEST = Path(__file__).resolve().parents[1] / "models" / "latest"


def artifact_with(tmp_path: Path, **changes: object) -> Path:
    """A copy of the shipped model with config.json fields changed."""
    target = tmp_path / "model"
    shutil.copytree(LATEST.resolve(), target)
    config = json.loads((target / "config.json").read_text())
    config.update(changes)
    (target / "config.json").write_text(json.dumps(config))
    return target


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("step_seconds", 60),
        ("encoder_length", 144),
        ("horizon", 48),
        ("quantiles", [0.05, 0.5, 0.95]),
        ("time_zone", "Mars/Olympus"),
    ],
)
def test_a_model_of_another_geometry_is_refused(tmp_path: Path, field: str, value: object) -> None:
    settings = DaemonSettings(model=artifact_with(tmp_path, **{field: value}), api_key="k")
    with pytest.raises(ModelLoadError, match=field):
        load_forecaster(settings, allow_baseline=False)


def test_the_shipped_geometry_loads_and_names_its_zone(tmp_path: Path) -> None:
    zoned = artifact_with(tmp_path, time_zone="Europe/Berlin")
    forecaster = load_forecaster(DaemonSettings(model=zoned, api_key="k"))
    assert forecaster.info["kind"] == "tft" and forecaster.config["time_zone"] == "Europe/Berlin"


def cuda_config(profile: gpu_profiles.GPUProfile) -> gpu_profiles.GPUConfig:
    """A detected GPU as setup_gpu() returns it (no CUDA needed to build one)."""
    device = torch.device("cuda", 0)
    return gpu_profiles.GPUConfig(profile, device, "NVIDIA H100 80GB HBM3", (9, 0))


@pytest.mark.parametrize(
    ("profile", "size"),
    [(gpu_profiles.H100, 1024), (gpu_profiles.H200, 2048), (gpu_profiles.GENERIC, 64)],
)
def test_the_gpu_profile_sets_the_batch_size_unless_configured(
    profile: gpu_profiles.GPUProfile, size: int, caplog: pytest.LogCaptureFixture
) -> None:
    unset = DaemonSettings(_env_file=None, api_key="k", forecast_batch_size=None)
    configured = DaemonSettings(_env_file=None, api_key="k", forecast_batch_size=96)
    with caplog.at_level(logging.INFO, logger="inference.loading"):
        assert forecast_batch_size(unset, cuda_config(profile)) == size
        assert forecast_batch_size(configured, cuda_config(profile)) == 96
    assert caplog.messages == [
        f"forecast batch size {size} windows per model call (the {profile.name} GPU profile)",
        "forecast batch size 96 windows per model call (TFT_FORECAST_BATCH_SIZE)",
    ]


def test_on_cpu_the_batch_size_is_128_or_the_configured_one(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("TFT_FORECAST_BATCH_SIZE", raising=False)
    with caplog.at_level(logging.INFO, logger="inference.loading"):
        default = load_forecaster(DaemonSettings(_env_file=None, api_key="k"))
    assert default.batch_size == CPU_FORECAST_BATCH == 128
    assert "forecast batch size 128 windows per model call (the CPU default" in caplog.text
    monkeypatch.setenv("TFT_FORECAST_BATCH_SIZE", "32")
    assert load_forecaster(DaemonSettings(_env_file=None, api_key="k")).batch_size == 32


def test_a_reload_of_a_name_that_is_no_path_names_the_model_field(tmp_path: Path) -> None:
    """{"model": "a\\u0000b"} raised ValueError from Path.resolve: a 500."""
    settings = DaemonSettings(_env_file=None, models_dir=tmp_path)
    with pytest.raises(ModelLoadError, match="^model: "):
        reload_path(settings, json.dumps({"model": "a\u0000b"}).encode())
