"""What the daemon serves between passes: a server's cached forecast (with its risk and
when its level began) and the forecast pass's counts for /health."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

import risk
from inference.predictions import iso, risk_fields


@dataclass
class Forecast:
    """A server's cached forecast: trajectory (H, 14, 3), its JSON, and its risk.

    The trajectory is kept as float16 (3 significant digits, 8 KB instead of 16 KB per
    server) for ?trajectory=true, the state file and scoring the risk again; the JSON
    fields are computed from the model's float32 output before that. The risk (and
    risk_json) is scored from the latest tick at scored_sec; since: when the risk level
    last changed. fields and risk_json are ',"key":value' fragments of /predict's entry."""

    origin: int
    trajectory: np.ndarray
    made_at: float
    fields: bytes
    assessment: risk.Assessment
    risk_json: bytes
    scored_sec: int
    since: float
    trajectory_json: bytes | None = None
    served: np.ndarray | None = None  # (14,) who made each metric: 0 the model, see accuracy
    # the early-warning estimate's (probabilities (M, 2), facts (F, M)) and its summary
    # {"metric", "1h", "8h"} (inference/early_warning.py); None under risk.py's rules
    estimate: tuple[np.ndarray, np.ndarray] | None = None
    chance: dict[str, Any] | None = None

    def rescored(self, assessment: risk.Assessment, scored_sec: int, now: float) -> None:
        """Take a new risk scoring (the level's since moves only when the level changes)."""
        if assessment.level != self.assessment.level:
            self.since = now
        self.assessment, self.scored_sec = assessment, scored_sec
        self.risk_json = risk_fields(assessment, self.chance)


@dataclass
class PassStats:
    passes: int = 0
    servers: int = 0
    seconds: float = 0.0
    finished_at: float | None = None
    error: str | None = None
    error_at: float | None = None
    failures: int = 0

    def as_dict(self) -> dict[str, Any]:
        out = {"passes": self.passes, "servers": self.servers, "seconds": round(self.seconds, 3)}
        out["finished_at"] = iso(self.finished_at) if self.finished_at else None
        out["error"] = self.error
        out["error_at"] = iso(self.error_at) if self.error_at else None
        out["failures"] = self.failures
        return out
