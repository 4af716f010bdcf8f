"""The early-warning model: calibrated probabilities that each risk metric reaches its
critical threshold within 1 h and within 8 h, from trouble.evidence.

One logistic regression per horizon, pooled over the risk metrics (the features are
threshold-relative), on a design of named terms:

    "level"                  a feature of trouble.evidence.FEATURES
    "hinge:level@-1"         max(level - (-1), 0)
    "above:p90_8h@0"         1 where p90_8h >= 0, else 0
    "metric:mem_used_pct"    1 for that risk metric, else 0
    "above:yday_8h@0*tracked"  the product of terms

standardised by the fit data's mean and spread, then a calibration map fitted on other
servers (knots for np.interp, monotone). predict() is vectorised numpy.

Files (save/load), never pickle:
    warning.safetensors   coef (2, T), intercept (2,), mean (T,), scale (T,),
                          calibration_x_<h>, calibration_y_<h> per horizon
    warning.json          format version, terms, features, horizons, levels and their
                          thresholds and targets, and what it was fitted and scored on
load() refuses a file whose format version, terms or evidence features differ from the code's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file
from safetensors.numpy import save as to_safetensors

import risk
from trouble import evidence as ev
from trouble.fitting import sigmoid

FORMAT_VERSION = 1
WEIGHTS_FILE = "warning.safetensors"
INFO_FILE = "warning.json"
HORIZON_NAMES = ("1h", "8h")  # the probabilities' last axis: ev.HORIZONS steps
HORIZON_STEPS = dict(zip(HORIZON_NAMES, ev.HORIZONS, strict=True))


class WarningModelError(ValueError):
    """A warning model file that is missing, corrupt or does not match this code."""


def term_values(evidence: ev.Evidence, term: str) -> np.ndarray:
    """(N, M) values of one design term (see the module doc)."""
    if "*" in term:
        left, right = term.split("*", 1)
        return term_values(evidence, left) * term_values(evidence, right)
    kind, _, rest = term.rpartition(":")
    if kind == "metric":
        if rest not in risk.RISK_METRICS:
            raise WarningModelError(f"unknown risk metric in term {term!r}")
        one_hot = np.array([m == rest for m in risk.RISK_METRICS], dtype=np.float64)
        return np.broadcast_to(one_hot, evidence.features["level"].shape)
    if kind in ("hinge", "above"):
        name, knot = rest.split("@")
        x = _feature(evidence, name) - float(knot)
        return np.maximum(x, 0.0) if kind == "hinge" else (x >= 0).astype(np.float64)
    if kind:
        raise WarningModelError(f"unknown kind of term {term!r}: metric, hinge or above")
    return _feature(evidence, term)


def _feature(evidence: ev.Evidence, name: str) -> np.ndarray:
    if name not in evidence.features:
        raise WarningModelError(f"unknown evidence feature {name!r} (trouble.evidence.FEATURES)")
    return evidence.features[name]


def design(evidence: ev.Evidence, terms: tuple[str, ...]) -> np.ndarray:
    """(N, M, T) design matrix of the terms."""
    return np.stack([term_values(evidence, t) for t in terms], axis=-1)


@dataclass
class WarningModel:
    """Logistic regression per horizon on standardised terms, then a calibration map."""

    terms: tuple[str, ...]
    mean: np.ndarray  # (T,)
    scale: np.ndarray  # (T,)
    coef: np.ndarray  # (2, T)
    intercept: np.ndarray  # (2,)
    calibration: list[tuple[np.ndarray, np.ndarray]]  # per horizon: knots x, y
    info: dict[str, Any] = field(default_factory=dict)  # thresholds, data, scores

    def raw(self, evidence: ev.Evidence) -> np.ndarray:
        """(N, M, 2) uncalibrated probabilities."""
        z = (design(evidence, self.terms) - self.mean) / self.scale
        return sigmoid(z @ self.coef.T + self.intercept)

    def predict(self, evidence: ev.Evidence) -> np.ndarray:
        """(N, M, 2) calibrated probabilities of reaching critical within [1 h, 8 h];
        NaN where the metric is unknown. The 8 h value is never below the 1 h value."""
        p = self.raw(evidence)
        out = np.stack([np.interp(p[..., k], *self.calibration[k]) for k in range(2)], axis=-1)
        out[..., 1] = np.maximum(out[..., 1], out[..., 0])
        return np.where(evidence.known[..., None], out, np.nan)

    def save(self, directory: Path | str) -> None:
        """warning.safetensors + warning.json into directory (created if needed)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {"coef": self.coef, "intercept": self.intercept}
        tensors |= {"mean": self.mean, "scale": self.scale}
        for k, (x, y) in zip(HORIZON_NAMES, self.calibration, strict=True):
            tensors |= {f"calibration_x_{k}": x, f"calibration_y_{k}": y}
        arrays = {k: np.ascontiguousarray(v, np.float64) for k, v in tensors.items()}
        (directory / WEIGHTS_FILE).write_bytes(to_safetensors(arrays))
        header = {"format_version": FORMAT_VERSION, "terms": list(self.terms)}
        header |= {"features": list(ev.FEATURES), "horizons": HORIZON_STEPS}
        text = json.dumps(header | self.info, indent=1, allow_nan=False)
        (directory / INFO_FILE).write_text(text + "\n")

    @classmethod
    def load(cls, directory: Path | str) -> WarningModel:
        """The model saved in directory; WarningModelError names the file and the mismatch."""
        directory = Path(directory)
        info = _read_info(directory / INFO_FILE)
        try:
            t = load_file(str(directory / WEIGHTS_FILE))
        except (OSError, SafetensorError) as exc:
            raise WarningModelError(f"{directory / WEIGHTS_FILE}: cannot read: {exc}") from exc
        terms = tuple(info.pop("terms"))
        shapes = {"coef": (2, len(terms)), "intercept": (2,), "mean": (len(terms),)}
        for name, shape in (shapes | {"scale": (len(terms),)}).items():
            if name not in t or t[name].shape != shape:
                raise WarningModelError(
                    f"{directory / WEIGHTS_FILE}: {name} must have shape {shape} for "
                    f"{len(terms)} terms; refit with python -m training.warning_fit"
                )
        calibration = [(t[f"calibration_x_{k}"], t[f"calibration_y_{k}"]) for k in HORIZON_NAMES]
        for name in ("format_version", "features", "horizons"):
            info.pop(name)
        return cls(terms, t["mean"], t["scale"], t["coef"], t["intercept"], calibration, info)


def _read_info(path: Path) -> dict[str, Any]:
    """warning.json, checked against this code: format version, features, horizons, terms."""
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise WarningModelError(f"{path}: cannot read: {exc}") from exc
    refit = "; refit it with python -m training.warning_fit --model <artifact>"
    version = info.get("format_version") if isinstance(info, dict) else None
    if version != FORMAT_VERSION:
        raise WarningModelError(
            f"{path}: format_version {version!r}, this code reads {FORMAT_VERSION}{refit}"
        )
    if info.get("features") != list(ev.FEATURES):
        raise WarningModelError(
            f"{path}: its evidence features {info.get('features')} are not this code's "
            f"{list(ev.FEATURES)}{refit}"
        )
    if info.get("horizons") != HORIZON_STEPS:
        raise WarningModelError(
            f"{path}: horizons {info.get('horizons')} are not {ev.HORIZONS}{refit}"
        )
    terms = info.get("terms")
    if not isinstance(terms, list) or not terms:
        raise WarningModelError(f"{path}: no terms{refit}")
    probe = ev.Evidence({n: np.zeros((1, len(risk.RISK_METRICS))) for n in ev.FEATURES}, {})
    for term in terms:
        try:
            term_values(probe, term)
        except (WarningModelError, ValueError) as exc:
            raise WarningModelError(f"{path}: term {term!r}: {exc}{refit}") from exc
    return info
