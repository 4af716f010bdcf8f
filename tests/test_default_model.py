"""The shipped default model in models/latest loads without pickle and forecasts."""

from __future__ import annotations

from pathlib import Path

import torch

import data_contract as dc
from fleet.generate import generate_fleet
from training import dataset as tds
from training import load_artifact

LATEST = Path(__file__).resolve().parents[1] / "models" / "latest"


def test_default_model_loads_and_forecasts_every_metric() -> None:
    loaded = load_artifact(LATEST)
    assert loaded.config["encoder_length"] == 288 and loaded.config["horizon"] == 96
    assert loaded.config["targets"] == list(dc.METRIC_COLUMNS)
    assert "--until" in loaded.training_info["command"]
    # Years before the model's training data: windows must still be built.
    frame = generate_fleet(n_servers=2, days=2, seed=3, start="2014-03-01").frame
    prepared = tds.prepare_frame(frame)
    data = tds.dataset_from_json(loaded.config["dataset"], prepared)
    x, _ = next(iter(data.to_dataloader(train=False, batch_size=4)))
    with torch.no_grad():
        prediction = loaded.model(x)["prediction"]
    assert len(prediction) == 14
    for metric, quantiles in zip(dc.METRIC_COLUMNS, prediction, strict=True):
        assert quantiles.shape == (4, 96, 3), metric
        assert torch.isfinite(quantiles).all(), metric
    cpu_idle = prediction[dc.METRIC_COLUMNS.index("cpu_idle_pct")][..., 1]
    assert cpu_idle.mean() > 20  # a generated fleet is mostly idle, not at 0%
