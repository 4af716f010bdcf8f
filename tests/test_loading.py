"""The daemon refuses a model whose geometry it cannot serve, naming the field."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from inference.loading import ModelLoadError, load_forecaster
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
