"""The early-warning estimate in the daemon: loaded with the forecaster, fed in the pass.

When a TFT artifact holds a fitted estimate (warning.safetensors + warning.json, written
by training.warning_fit), the daemon's risk levels come from it (trouble/): per risk
metric, the calibrated probabilities of reaching critical within 1 h and 8 h, from the
last HISTORY_STEPS closed steps and the forecast. Without one, risk.py's rules on the
forecast band give the levels, as before; /predict's model block says which.

The pass computes the evidence and the probabilities once per forecast; each server
keeps its probabilities and facts (an Estimate row) with its cached forecast, so that a
new tick between passes scores its level again from the latest values (critical now
is critical within seconds) without the history.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

import risk
from inference.buffers import FleetBuffers
from inference.cache import Forecast
from inference.forecast import Forecaster
from inference.windows import Snapshot, window_values
from training.artifact import resolve_artifact
from trouble import evidence, levels
from trouble.model import INFO_FILE, WarningModel, WarningModelError

logger = logging.getLogger(__name__)

HISTORY_STEPS = evidence.HISTORY_STEPS  # the closed steps the buffers keep for it
RULES_INFO = {"kind": "risk_rules", "note": "levels from the forecast band (risk.py)"}


class WarningLoadError(RuntimeError):
    """An artifact's early-warning files exist but cannot be used; says how to fix it."""


def load_warning(path: Path) -> WarningModel | None:
    """The estimate fitted for the artifact at path (None if it has none)."""
    directory = resolve_artifact(path)
    if not (directory / INFO_FILE).exists():
        logger.info("model %s has no early-warning estimate: risk.py's rules", directory.name)
        return None
    try:
        model = WarningModel.load(directory)
    except WarningModelError as exc:
        raise WarningLoadError(f"early-warning estimate of {directory}: {exc}") from exc
    logger.info("loaded the early-warning estimate of %s", directory.name)
    return model


def warning_for(forecaster: Forecaster, path: Path) -> WarningModel | None:
    """The estimate to serve with forecaster, loaded from its artifact at path (a
    labelled baseline forecaster has none: risk.py's rules score its band)."""
    return load_warning(path) if forecaster.info["kind"] == "tft" else None


def warning_info(model: WarningModel | None, artifact: str) -> dict[str, Any]:
    """/predict's and /health's description of what sets the risk levels."""
    if model is None:
        return dict(RULES_INFO)
    fitted = model.info.get("fitted", {})
    return {
        "kind": "calibrated_estimate",
        "artifact": artifact,
        "horizons": ["1h", "8h"],
        "thresholds": model.info.get("thresholds"),
        "targets": model.info.get("targets"),
        "fitted": {k: fitted.get(k) for k in ("forecaster", "until", "created")},
    }


@dataclass(frozen=True)
class Estimate:
    """The estimate of N servers: probabilities (N, M, 2) [1 h, 8 h] and the facts of
    trouble.evidence.FACTS (N, F, M), both float32, NaN where a metric is unknown."""

    probabilities: np.ndarray
    facts: np.ndarray

    def row(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return self.probabilities[i], self.facts[i]

    @classmethod
    def stack(cls, rows: list[tuple[np.ndarray, np.ndarray]]) -> Estimate:
        return cls(np.stack([p for p, _ in rows]), np.stack([f for _, f in rows]))


def history(buffers: FleetBuffers, rows: np.ndarray, now: float) -> np.ndarray:
    """(N, HISTORY_STEPS, 14) the closed steps ending at each origin, gaps carried
    forward as for the model; NaN before a server's first tick (no made-up yesterday)."""
    snapshot = buffers.snapshot(rows, now, length=HISTORY_STEPS)
    values, _ = window_values(snapshot)
    steps = snapshot.last_step[:, None] + np.arange(1 - HISTORY_STEPS, 1)[None, :]
    before = steps < buffers.arrays["first"][rows][:, None]
    values[before] = np.nan
    return values


def estimate(
    model: WarningModel, past: np.ndarray, trajectory: np.ndarray, cores: np.ndarray
) -> Estimate:
    """The probabilities and facts of N servers from their history and forecast."""
    found = evidence.from_contract(past, trajectory, cores)
    facts = np.stack([found.facts[name] for name in evidence.FACTS], axis=1)
    return Estimate(model.predict(found).astype(np.float32), facts.astype(np.float32))


def assess(
    model: WarningModel,
    found: Estimate,
    latest: np.ndarray,
    cores: np.ndarray,
    origins: np.ndarray,
    step_seconds: int,
) -> list[risk.Assessment]:
    """Each server's level, score and factors from its estimate and its latest tick
    (latest (N, 14): what is critical now is critical now)."""
    facts = {name: found.facts[:, i].astype(np.float64) for i, name in enumerate(evidence.FACTS)}
    now = evidence.risk_history(latest[:, None, :].astype(np.float64), cores)[:, 0, :]
    facts["now"] = np.where(np.isnan(now), facts["now"], now)
    thresholds = levels.Thresholds(**model.info["thresholds"])
    times = [datetime.fromtimestamp(int(o) * step_seconds, timezone.utc) for o in origins]
    chances = found.probabilities.astype(np.float64)
    return levels.assess(chances, evidence.Evidence({}, facts), thresholds, times)


def summary(found: Estimate) -> list[dict[str, Any] | None]:
    """Per server, its most likely trouble: {"metric", "1h", "8h"} (None: nothing known)."""
    p8 = np.nan_to_num(found.probabilities[..., 1], nan=-1.0)
    worst = p8.argmax(axis=1)
    out: list[dict[str, Any] | None] = []
    for i, m in enumerate(worst.tolist()):
        p1, p8_i = found.probabilities[i, m].tolist()
        if np.isnan(p8_i):
            out.append(None)
            continue
        out.append({"metric": risk.RISK_METRICS[m], "1h": round(p1, 3), "8h": round(p8_i, 3)})
    return out


def assess_forecasts(
    warning: WarningModel | None,
    snapshot: Snapshot,
    trajectory: np.ndarray,
    past: np.ndarray | None,
    cores: np.ndarray,
    step_seconds: int,
) -> tuple[list[risk.Assessment], Estimate | None]:
    """The risk of servers just forecast, and their estimate: from the estimate when
    there is one (and their history), else risk.py's rules on the forecast band."""
    if warning is None or past is None:
        return risk.assess(snapshot.latest, trajectory, cores), None
    found = estimate(warning, past, trajectory, cores)
    origins = snapshot.last_step
    return assess(warning, found, snapshot.latest, cores, origins, step_seconds), found


def reassess(
    warning: WarningModel | None,
    forecasts: list[Forecast],
    current: np.ndarray,
    cores: np.ndarray,
    step_seconds: int,
) -> list[risk.Assessment]:
    """The risk of cached forecasts from the latest ticks (current (N, 14)): their
    estimate's levels with the current values, or risk.py's rules on their trajectories."""
    if warning is not None and all(f.estimate is not None for f in forecasts):
        found = Estimate.stack([f.estimate for f in forecasts])  # type: ignore[misc]
        origins = np.array([f.origin for f in forecasts])
        return assess(warning, found, current, cores, origins, step_seconds)
    trajectories = np.stack([f.trajectory for f in forecasts]).astype(np.float32)
    return risk.assess(current, trajectories, cores)
