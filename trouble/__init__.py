"""Early warning as its own calibrated estimate: for every risk metric of risk.py, the
probability that it reaches its critical threshold within 1 h and within 8 h.

    evidence.py   what the history and the forecast say (features and facts), vectorised
    model.py      WarningModel: calibrated probabilities; warning.safetensors + warning.json
    fitting.py    labels, logistic regression, calibration maps, thresholds (training only)
    levels.py     levels, points and risk factors from the probabilities
    wording.py    the reason of each flagged metric, in words

In the daemon's pass, for the servers just forecast:

    model = WarningModel.load(artifact_dir)
    probabilities, assessments = trouble.assess(model, history, trajectory, cores, origins)

history (N, HISTORY_STEPS, 14) the closed steps ending at the origin (gaps carried
forward), trajectory (N, 96, 14, 3) the forecast, cores (N,) (NaN unknown), origins the
origin times (aware datetimes in the zone the reasons should show). The assessments are
risk.Assessment objects (score, level, factors) as risk.assess returns them.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np

import risk
from trouble import evidence, levels
from trouble.model import WarningModel


def assess(
    model: WarningModel,
    history: np.ndarray,
    trajectory: np.ndarray,
    cores: np.ndarray | None,
    origins: list[datetime],
) -> tuple[np.ndarray, list[risk.Assessment]]:
    """(N, M, 2) calibrated probabilities [1 h, 8 h] and each server's assessment."""
    found = evidence.from_contract(history, trajectory, cores)
    probabilities = model.predict(found)
    thresholds = levels.Thresholds(**model.info["thresholds"])
    return probabilities, levels.assess(probabilities, found, thresholds, origins)
