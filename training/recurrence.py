"""Inputs that give the network what the baselines know: window summaries and yesterday.

Two optional input sets (the trainer's --recurrence-inputs), per forecast target (the
metrics forecast by a rule, training.deterministic, are left out), all in the window's
normalised units ``(t(value) - center) / scale`` of that target (training.normalizers;
with the last-value anchor 0 is the last value):

* ``summaries``: static reals ``<target>_hour_mean``, ``<target>_hour_max`` (the last
  hour of the encoder) and ``<target>_day_max`` (the whole 24-hour encoder): what the
  hour-mean baseline and a level's recent peaks are. Written at the first encoder step,
  the only one the network reads for a static input (writing all 384 steps cost 4 ms
  per 128 windows), 0 elsewhere.
* ``yesterday``: decoder-only known reals ``<target>_yesterday``: for decoder step k
  (1..horizon) the value one day (``lag`` steps) before it, ``t + k - lag``, which lies
  inside the encoder for every horizon up to a day (what seasonal naive forecasts). The
  encoder never reads it (it is not an encoder variable); its encoder columns are 0.

They are functions of the window, not frame columns: training.inputs.assemble_inputs
builds them, from the same normalised encoder values, for the fast training batches and
for the daemon. pytorch-forecasting's TimeSeriesDataSet does not know them: it defines
the other inputs and the normalisers, and model_overrides adds these to the network's
variable lists. config.json declares each one under inputs.reals (kinds
"window_summary" and "yesterday", with their step counts), which is what the builder
reads: artifacts without them are built exactly as before.
"""

from __future__ import annotations

from typing import Any

import torch

from training import deterministic

INPUT_SETS = ("summaries", "yesterday")
#: The trainer's default (chosen by measurement: README, "What was tried").
DEFAULT = ("summaries", "yesterday")
HOUR_SECONDS, DAY_SECONDS = 3600, 86_400
#: summary -> (reduction, window): "hour" = the last hour, "day" = the last day.
SUMMARIES = {"hour_mean": ("mean", "hour"), "hour_max": ("max", "hour"), "day_max": ("max", "day")}


def forecast_targets(targets: list[str]) -> list[str]:
    """The targets that get these inputs: all but the ones forecast by a rule."""
    return [t for t in targets if t not in deterministic.RULES]


def summary_names(targets: list[str]) -> list[str]:
    return [f"{t}_{s}" for t in forecast_targets(targets) for s in SUMMARIES]


def yesterday_names(targets: list[str]) -> list[str]:
    return [f"{t}_yesterday" for t in forecast_targets(targets)]


def check_sets(chosen: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The chosen input sets in INPUT_SETS order; ValueError for an unknown one."""
    unknown = set(chosen) - set(INPUT_SETS)
    if unknown:
        raise ValueError(f"unknown recurrence inputs {sorted(unknown)}; choose from {INPUT_SETS}")
    return tuple(s for s in INPUT_SETS if s in chosen)


def model_overrides(dataset: Any, chosen: tuple[str, ...], step_seconds: int) -> dict[str, Any]:
    """TemporalFusionTransformer.from_dataset keyword arguments adding the chosen inputs
    (static reals, decoder reals, x_reals); {} when none is chosen."""
    chosen = check_sets(chosen)
    if not chosen:
        return {}
    day = DAY_SECONDS // step_seconds
    if "yesterday" in chosen and dataset.max_prediction_length > day:
        raise ValueError("yesterday inputs need a horizon of at most one day")
    if "yesterday" in chosen and dataset.min_encoder_length < day:
        raise ValueError(
            f"yesterday inputs need an encoder of at least one day ({day} steps), got "
            f"{dataset.min_encoder_length}: train with --recurrence-inputs summaries (or none)"
        )
    if dataset.min_encoder_length != dataset.max_encoder_length:
        raise ValueError("recurrence inputs need a fixed encoder length")
    targets = list(dataset.target_names)
    static = summary_names(targets) if "summaries" in chosen else []
    decoder = yesterday_names(targets) if "yesterday" in chosen else []
    return {
        "static_reals": [*dataset._static_reals, *static],
        "time_varying_reals_decoder": [*dataset._time_varying_known_reals, *decoder],
        "x_reals": [*dataset.reals, *static, *decoder],
    }


def source(name: str, targets: list[str], step_seconds: int) -> dict[str, Any] | None:
    """config.json's description of one of these inputs (None: not one of them)."""
    for target in forecast_targets(targets):
        if name == f"{target}_yesterday":
            lag = DAY_SECONDS // step_seconds
            return {
                "kind": "yesterday",
                "target": target,
                "lag": lag,
                "formula": f"decoder step k (1..D): the normalised value at encoder index "
                f"E - 1 + k - {lag}; encoder steps: 0 (not an encoder variable)",
            }
        for summary, (reduction, window) in SUMMARIES.items():
            if name == f"{target}_{summary}":
                steps = (HOUR_SECONDS if window == "hour" else DAY_SECONDS) // step_seconds
                return {
                    "kind": "window_summary",
                    "target": target,
                    "reduction": reduction,
                    "steps": steps,
                    "formula": f"{reduction} of the normalised values of the last {steps} "
                    "encoder steps (static: at the first encoder step, 0 elsewhere)",
                }
    return None


def _groups(spec: dict[str, Any]) -> dict[tuple, tuple[list[int], list[int]]]:
    """{(kind, reduction or lag, steps): (x_reals columns, target rows)} of these inputs."""
    col = {name: i for i, name in enumerate(spec["x_reals"])}
    targets = [e["target"] for e in spec["target_normalizers"]]
    groups: dict[tuple, tuple[list[int], list[int]]] = {}
    for name, entry in spec["reals"].items():
        if entry["kind"] == "window_summary":
            key = (entry["kind"], entry["reduction"], entry["steps"])
        elif entry["kind"] == "yesterday":
            key = (entry["kind"], entry["lag"], 0)
        else:
            continue
        cols, rows = groups.setdefault(key, ([], []))
        cols.append(col[name])
        rows.append(targets.index(entry["target"]))
    return groups


def _put(cont: torch.Tensor, cols: list[int], value: torch.Tensor) -> None:
    """cont[..., cols] = value; a strided slice (a view: much faster than an index_put
    over every step) when the columns are evenly spaced, as these are."""
    step = cols[1] - cols[0] if len(cols) > 1 else 1
    if step > 0 and cols == list(range(cols[0], cols[-1] + 1, step)):
        cont[..., cols[0] : cols[-1] + 1 : step] = value
    else:
        cont[..., cols] = value


def fill(cont: torch.Tensor, spec: dict[str, Any], normalised: torch.Tensor, enc: int) -> None:
    """Write the window summaries and yesterday inputs that spec declares into cont
    (B, E + D, R), from the normalised values (B, targets, >= E) of the same windows."""
    head, dec = normalised[..., :enc], cont.shape[1] - enc
    for (kind, how, steps), (cols, rows) in _groups(spec).items():
        if kind == "window_summary":
            window = head[:, rows, -steps:]
            value = window.mean(-1) if how == "mean" else window.amax(-1)
            _put(cont[:, :1], cols, value[:, None, :])  # static: read at step 0 only
            continue
        first = enc - how
        if first < 0 or first + dec > enc:
            raise ValueError(
                f"yesterday inputs need {how} encoder steps and a horizon of at "
                f"most {how}, got {enc} and {dec}"
            )
        _put(cont[:, enc:], cols, head[:, rows, first : first + dec].transpose(1, 2))
