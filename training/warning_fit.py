"""Fit the early-warning estimate (trouble/) against a forecaster, and write it into the
model's artifact folder.

    python -m training.warning_fit --model build/models/tft_copy \
        --fleet build/corpus/server_metrics.parquet [--cache build/warning_cache]

Origins: every --every steps of the training corpus before the model's --until (the
fleet without the forecaster's held-out servers, training.nab's and training.azure's
training parts). Each gets the daemon's window (gaps carried forward), the forecaster's
trajectory, the evidence (trouble.evidence) and labels from the next 96 steps: reaches
critical within 1 h, within 8 h. Only origins below critical now, on risk metrics with
real data (NAB and Azure measure CPU only), are trained on. Servers are split by a seeded
draw per source: FIT_SHARE fits the model, the rest calibrates it and chooses the level
thresholds (trouble.fitting). Everything goes into warning.safetensors + warning.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

import risk
from env_settings import configure_logging
from training import warning_data as wd
from training.warning_data import Rows
from trouble import evidence as ev
from trouble import fitting, levels
from trouble.model import HORIZON_NAMES, WarningModel, design

logger = logging.getLogger(__name__)

# --- fitting --------------------------------------------------------------------------

# The chosen design: every evidence feature, and an intercept per risk metric (CPU the
# reference; load per core, never in the corpus, keeps CPU's). Candidates tried: README.
METRIC_TERMS = tuple(f"metric:{m}" for m in risk.RISK_METRICS if m != "cpu_used_pct")
TERMS: tuple[str, ...] = ev.FEATURES + METRIC_TERMS
L2 = 1.0
GENERATED_SHARE = 0.5  # of the fitting and calibration weight; real series the rest


def balanced(rows: Rows, generated_share: float = GENERATED_SHARE) -> np.ndarray:
    """(R,) row weights: the generated rows weigh generated_share in all, the real rows
    (every other source) the rest, each real row alike; the weights average 1."""
    generated = rows.flat(rows.source) == "generated"
    shares = np.array([1.0 - generated_share, generated_share])
    if generated.all() or not generated.any():
        shares[:] = 1.0
    weight = np.where(generated, shares[1] / max(generated.sum(), 1), 0.0)
    weight += np.where(~generated, shares[0] / max((~generated).sum(), 1), 0.0)
    return weight * len(weight) / weight.sum()


def standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and spread of each column (spread 1 for a constant column)."""
    scale = x.std(axis=0)
    return x.mean(axis=0), np.where(scale > 1e-9, scale, 1.0)


def fit_model(
    rows: Rows, terms: tuple[str, ...] = TERMS, l2: float = L2, weight: np.ndarray | None = None
) -> WarningModel:
    """Logistic regression per horizon on the fitting rows, isotonic calibration on the
    others; no thresholds yet (choose_thresholds)."""
    weight = balanced(rows) if weight is None else weight
    x, y, fit = rows.flat(design(rows.evidence, terms)), rows.flat(rows.y), rows.flat(rows.fit)
    mean, scale = standardise(x[fit])
    z = (x - mean) / scale
    coef, intercept, calibration = [], [], []
    for k in range(len(ev.HORIZONS)):
        known = ~np.isnan(y[:, k])
        train, held = known & fit, known & ~fit
        c, b = fitting.logistic(z[train], y[train, k], weight[train] / weight[train].mean(), l2)
        coef.append(c)
        intercept.append(b)
        raw = fitting.sigmoid(z[held] @ c + b)
        calibration.append(fitting.isotonic(raw, y[held, k], weight[held]))
    return WarningModel(terms, mean, scale, np.array(coef), np.array(intercept), calibration)


def choose_thresholds(model: WarningModel, rows: Rows, weight: np.ndarray) -> tuple:
    """Level thresholds for levels.TARGETS' precisions on the calibration rows (weighted),
    and what each gives there."""
    held = ~rows.flat(rows.fit)
    p, y = rows.flat(model.predict(rows.evidence))[held], rows.flat(rows.y)[held]
    chosen, stats = {}, {}
    for level, (k, target) in levels.TARGETS.items():
        known = ~np.isnan(y[:, k])
        chosen[level], stats[level] = fitting.threshold_for_precision(
            p[known, k], y[known, k], target, weight[held][known]
        )
        stats[level] |= {"target_precision": target, "horizon": HORIZON_NAMES[k]}
    chosen = {k: max(v, levels.FLOOR) for k, v in chosen.items()}
    chosen["watch"] = min(chosen["watch"], chosen["warning"])
    return levels.Thresholds(**chosen), stats


def calibration_scores(model: WarningModel, rows: Rows, weight: np.ndarray) -> dict:
    """Log loss per horizon on the calibration rows: the model and the rows' base rate."""
    held = ~rows.flat(rows.fit)
    p, y, w = rows.flat(model.predict(rows.evidence))[held], rows.flat(rows.y)[held], weight[held]
    out = {}
    for k, name in enumerate(HORIZON_NAMES):
        known = ~np.isnan(y[:, k])
        rate = np.full(known.sum(), np.average(y[known, k], weights=w[known]))
        out[name] = {
            "rows": int(known.sum()),
            "positives": int(y[known, k].sum()),
            "log_loss": round(fitting.log_loss(p[known, k], y[known, k], w[known]), 5),
            "log_loss_base_rate": round(fitting.log_loss(rate, y[known, k], w[known]), 5),
        }
    return out


def data_summary(rows: Rows) -> dict:
    """Per source: origins, trainable rows and positives, in each share."""
    source, fit, y = rows.flat(rows.source), rows.flat(rows.fit), rows.flat(rows.y)
    out = {}
    for name in sorted(set(rows.source.tolist())):
        mine = source == name
        out[name] = {"origins": int((rows.source == name).sum())}
        for part, sel in (("fit", mine & fit), ("calibration", mine & ~fit)):
            out[name][part] = {"rows": int(sel.sum())}
            out[name][part] |= {
                f"positives_{h}": int(np.nansum(y[sel, k])) for k, h in enumerate(HORIZON_NAMES)
            }
    return out


def fit_all(rows: Rows, terms: tuple[str, ...] = TERMS) -> WarningModel:
    """Fit, calibrate, choose the thresholds, and record it all in the model's info."""
    weight = balanced(rows)
    model = fit_model(rows, terms, L2, weight)
    thresholds, stats = choose_thresholds(model, rows, weight)
    model.info |= {
        "model": f"logistic regression per horizon (L2 {L2}) on the standardised terms, "
        "then an isotonic calibration map fitted on the calibration servers",
        "levels": levels.RULES,
        "thresholds": thresholds.to_json(),
        "targets": {
            k: {"horizon": HORIZON_NAMES[h], "precision": t} for k, (h, t) in levels.TARGETS.items()
        },
        "threshold_scores": stats,
        "weights": f"generated rows {GENERATED_SHARE:g} of the weight, real rows the rest",
        "calibration_scores": calibration_scores(model, rows, weight),
        "data": data_summary(rows),
    }
    return model


# --- command line ---------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from training import azure, nab

    p = argparse.ArgumentParser(prog="python -m training.warning_fit", description=__doc__)
    p.add_argument("--model", required=True, help="the forecaster's artifact folder")
    p.add_argument("--fleet", type=Path, help="the generated fleet parquet it was trained on")
    p.add_argument("--nab", type=Path, default=nab.DEFAULT_DIR, help="NAB folder")
    p.add_argument("--azure", type=Path, default=azure.DEFAULT_DIR, help="Azure VM folder")
    p.add_argument("--no-nab", action="store_true")
    p.add_argument("--no-azure", action="store_true")
    p.add_argument("--every", type=int, default=wd.EVERY, help="steps between origins")
    p.add_argument("--cache", type=Path, help="keep the origins here (<model name>/*.npz)")
    p.add_argument("--out", type=Path, help="write warning.* here (default: --model)")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    return p.parse_args(argv)


def provenance(loaded, every: int, argv: list[str]) -> dict:
    """What the estimate was fitted against, and how."""
    return {
        "forecaster": loaded.name,
        "until": wd.training_end(loaded.training_info).isoformat(),
        "every_steps": every,
        "fit_share": wd.FIT_SHARE,
        "split_seed": wd.SPLIT_SEED,
        "command": "python -m training.warning_fit " + " ".join(argv),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def main(argv: list[str] | None = None) -> int:
    import torch

    from inference.forecast import TFTForecaster
    from training.artifact import load_artifact

    args = parse_args(argv)
    configure_logging("INFO")
    torch.set_num_threads(args.threads)
    loaded = load_artifact(args.model)
    nab_dir = None if args.no_nab else args.nab
    azure_dir = None if args.no_azure else args.azure
    sources = wd.fit_sources(loaded.training_info, args.fleet, nab_dir, azure_dir)
    if not sources:
        raise SystemExit("nothing to fit on: give --fleet, or leave NAB or Azure in")
    forecaster = TFTForecaster(loaded)
    cache = None if args.cache is None else args.cache / loaded.name
    rows = wd.join_rows(
        [wd.rows_of(wd.gathered(forecaster, s, args.every, cache)) for s in sources]
    )
    model = fit_all(rows)
    model.info["fitted"] = provenance(loaded, args.every, sys.argv[1:] if argv is None else argv)
    out = args.out or loaded.path
    model.save(out)
    logger.info("thresholds %s -> %s", model.info["thresholds"], out)
    sys.stdout.write(json.dumps(model.info, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
