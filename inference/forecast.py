"""Forecasters: encoder windows (numpy, straight from the buffers) -> quantile trajectories.

Both return (B, horizon, 14, 3) float32: p10/p50/p90 of every metric at each step after
the window's last step, clipped to the contract's ranges, with p10 <= p50 <= p90. Metrics
that the artifact marks deterministic (training.deterministic, e.g. uptime) are forecast
by their rule, and ``info["deterministic"]`` names them. ``info`` says what produced
them, and /predict repeats it: kind "tft" for the Temporal Fusion Transformer, kind
"seasonal_naive" for the labelled fallback (same time yesterday; p10 = p50 = p90).

TFTForecaster builds forward()'s inputs with training.inputs (no DataFrame, no
TimeSeriesDataSet); tests show its forecasts equal the library's predict() on the same
windows.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import numpy as np
import torch

import data_contract as dc
from inference.fast_tft import accelerate
from inference.ingest import STATE_CODES
from training import deterministic
from training.artifact import LoadedModel
from training.inputs import assemble_inputs, encode_categories, window_times

logger = logging.getLogger(__name__)

QUANTILES = dc.QUANTILES
LOW = dc.METRIC_LOW.astype(np.float32)
HIGH = dc.METRIC_HIGH.astype(np.float32)


class Forecaster(Protocol):
    info: dict[str, Any]
    horizon: int

    def forecast(
        self, values: np.ndarray, states: np.ndarray, servers: list[str], last_step: np.ndarray
    ) -> np.ndarray:
        """values (B, E, 14), states (B, E) STATE_CODES, last_step (B,) -> (B, H, 14, 3)."""
        ...


class TFTForecaster:
    """The trained TFT, run in batches under torch.inference_mode()."""

    def __init__(self, loaded: LoadedModel, batch_size: int = 128, fast: bool = True) -> None:
        self.model, self.config = loaded.model, loaded.config
        self.device = next(self.model.parameters()).device
        self.horizon, self.batch_size = int(self.config["horizon"]), batch_size
        if fast:
            self.model = accelerate(self.model)
        self._name_to_id = loaded.server_mapping["name_to_id"]
        ours = np.array(sorted(STATE_CODES, key=STATE_CODES.get), dtype=object)
        self._state_codes = encode_categories(self.config, "state", ours)
        self.info = {
            "kind": "tft",
            "name": loaded.name,
            "contract_version": self.config["contract_version"],
            "quantiles": list(QUANTILES),
            "trained_on": loaded.training_info.get("data_time_range"),
            "deterministic": dict(self.config.get("deterministic_metrics", {})),
        }
        self._steps_per_day = 86_400 // int(self.config["step_seconds"])

    def forecast(
        self, values: np.ndarray, states: np.ndarray, servers: list[str], last_step: np.ndarray
    ) -> np.ndarray:
        ids = np.array([self._name_to_id.get(s, "") for s in servers], dtype=object)
        server_codes = encode_categories(self.config, "server_id", ids)
        parts = []
        for start in range(0, len(servers), self.batch_size):
            part = slice(start, start + self.batch_size)
            parts.append(
                self._predict(values[part], states[part], server_codes[part], last_step[part])
            )
        out = np.concatenate(parts) if parts else np.empty((0, self.horizon, 14, 3), np.float32)
        self._apply_rules(values, out)
        out.sort(axis=-1)  # quantile crossings cannot survive: p10 <= p50 <= p90
        return np.clip(out, LOW[:, None], HIGH[:, None])

    def _apply_rules(self, values: np.ndarray, out: np.ndarray) -> None:
        """Overwrite the deterministic metrics' forecasts (all quantiles) in place."""
        if "uptime_days" in self.info["deterministic"]:
            i = dc.METRIC_COLUMNS.index("uptime_days")
            rule = deterministic.uptime_forecast(values[:, :, i], self.horizon, self._steps_per_day)
            out[:, :, i, :] = rule[..., None]

    def _predict(
        self, values: np.ndarray, states: np.ndarray, codes: np.ndarray, last: np.ndarray
    ) -> np.ndarray:
        times = window_times(self.config, last, values.shape[1])
        x = assemble_inputs(self.config, values, self._state_codes[states], codes, times)
        if self.device.type != "cpu":
            x = {
                k: [t.to(self.device) for t in v] if isinstance(v, list) else v.to(self.device)
                for k, v in x.items()
            }
        with torch.inference_mode():
            prediction = self.model(x)["prediction"]
        return torch.stack(prediction, dim=2).cpu().numpy()


class SeasonalNaiveForecaster:
    """Same time yesterday, for every quantile; served only when asked for (--baseline)."""

    def __init__(
        self,
        horizon: int = dc.REPORTED_HORIZONS["8h"],
        period: int = dc.STEPS_PER_DAY,
        reason: str = "",
    ) -> None:
        self.horizon, self.period = horizon, period
        self.info = {
            "kind": "seasonal_naive",
            "name": f"seasonal_naive_{period}",
            "contract_version": dc.CONTRACT_VERSION,
            "quantiles": list(QUANTILES),
            "note": "not the TFT: each step repeats the value one day earlier; p10 = p50 = p90",
            "reason": reason,
        }

    def forecast(
        self, values: np.ndarray, states: np.ndarray, servers: list[str], last_step: np.ndarray
    ) -> np.ndarray:
        if values.shape[1] < self.period:
            raise ValueError(f"seasonal naive needs {self.period} steps, got {values.shape[1]}")
        start = values.shape[1] - self.period
        steps = start + np.arange(self.horizon) % self.period
        point = values[:, steps, :].astype(np.float32)
        return np.repeat(point[..., None], len(QUANTILES), axis=-1)
