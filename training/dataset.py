"""From a contract frame to the model-ready frame and TimeSeriesDataSet parameters.

The time split and the datasets themselves are in training.splits.

Time: ``time_idx = (timestamp_utc - 1970-01-01) // step_seconds``; naive timestamps are
UTC. Several rows of one server in one step (ticks, e.g. an adapter's export) are
aggregated by the daemon's rule, data_contract.AGGREGATION.

Gaps: the contract drops a server's rows while it is 'offline', so a series has holes.
prepare_frame fills them explicitly (allow_missing_timesteps stays False): every server
gets one row per step from its first to its last observation; a filled row has state
'offline', metrics carried forward from the last observed row, and time features
computed from its own timestamp (pytorch-forecasting's own gap filling would carry the
previous row's hour/day forward too). ``filled`` marks those rows. An inference path
must fill its history the same way (see fill_gaps).

Features: 14 metric targets (float32), also unknown reals; the contract's time features,
scaled to [-1, 1] by fixed constants (TIME_FEATURE_SCALING), as known reals; 'state'
(unknown) and 'server_id' (static) categoricals with NaNLabelEncoder(add_nan=True), the
state encoder pre-fitted on all 8 VALID_STATES; relative_time_idx; per-target window
center/scale as static reals, fed as log1p(value) (fixed, data-independent scalers).
Targets use MetricNormalizer (see training.normalizers), fitted on each window's encoder.
The optional inputs of what recurs (window summaries, yesterday: training.recurrence) are
functions of each window, not frame columns: the model declares them, training.inputs
builds them; the TimeSeriesDataSet here does not know them.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from pytorch_forecasting import TimeSeriesDataSet
from pytorch_forecasting.data.encoders import MultiNormalizer, NaNLabelEncoder, TorchNormalizer

from data_contract import (
    METRIC_COLUMNS,
    PERCENT_COLUMNS,
    REPORTED_HORIZONS,
    STEP_SECONDS,
    STEPS_PER_DAY,
    TIME_FEATURES,
    VALID_STATES,
    aggregate_rows,
    create_server_mapping,
    time_features,
)
from training.codec import from_json, to_json
from training.normalizers import MetricNormalizer

logger = logging.getLogger(__name__)

# STEP_SECONDS: the contract's step (imported above); the trainer's defaults below.
ENCODER_LENGTH = STEPS_PER_DAY  # 288: 24 h of 5-minute steps
HORIZON = REPORTED_HORIZONS["8h"]  # 96: the farthest reported horizon
# The contract's reported horizons, under the labels artifacts' metadata has always used.
REPORTED_HORIZONS = dict(zip(("30min", "1h", "8h"), REPORTED_HORIZONS.values(), strict=True))
TIME_ORIGIN = pd.Timestamp("1970-01-01", tz="UTC")
OFFLINE_STATE = "offline"

#: Non-negative, heavy-tailed counters and load: normalised in log1p space.
LOG1P_METRICS = ("back_close_wait", "front_close_wait", "load_average")
#: Network rates (MB/s) range from 1e-4 (KB/s) to hundreds: log1p(1000 x), see normalizers.
LOG1P_KB_METRICS = ("net_in_mb_s", "net_out_mb_s")
TRANSFORMATION = {
    **dict.fromkeys(LOG1P_METRICS, "log1p"),
    **dict.fromkeys(LOG1P_KB_METRICS, "log1p_kb"),
}
#: Scale floor per metric, in transformed units (percentage points, days, or log units).
MIN_SCALE = {m: (0.1 if m in TRANSFORMATION else 1.0) for m in METRIC_COLUMNS}
#: Window anchor of the target normaliser: "last" = persistence is the network's zero.
ANCHOR = "last"
#: The calendar inputs. ``month`` is left out: a fleet's history rarely covers a year,
#: so a model that saw January and February only would treat March as unknown input.
MODEL_TIME_FEATURES = tuple(f for f in TIME_FEATURES if f != "month")
#: Loss weight floor per metric, in real units (see target_loss_weights).
LOSS_SCALE_FLOOR = {
    m: (1.0 if m in PERCENT_COLUMNS or m == "uptime_days" else 0.1) for m in METRIC_COLUMNS
}
#: (center, half-range): scaled = (raw - center) / half_range, in [-1, 1].
TIME_FEATURE_SCALING = {
    "hour": (11.5, 11.5),
    "day_of_week": (3.0, 3.0),
    "month": (6.5, 5.5),
    "is_weekend": (0.5, 0.5),
    "is_business_hours": (0.5, 0.5),
}


# --- frame preparation ---------------------------------------------------------------


def to_utc(timestamps: pd.Series) -> pd.Series:
    """Timestamps in UTC; naive ones are taken as UTC."""
    if timestamps.dt.tz is None:
        return timestamps.dt.tz_localize("UTC")
    return timestamps.dt.tz_convert("UTC")


def is_time_zone(value: object) -> bool:
    """A zone pandas can compute local times in (IANA name or a fixed offset), or None."""
    if value is None:
        return True
    try:
        pd.Timestamp(0, tz=value)
    except (TypeError, ValueError, KeyError):  # ZoneInfoNotFoundError is a KeyError
        return False
    return True


def time_index(timestamps: pd.Series, step_seconds: int = STEP_SECONDS) -> pd.Series:
    """Integer step number since 1970-01-01 UTC."""
    delta = to_utc(timestamps) - TIME_ORIGIN
    return (delta // pd.Timedelta(seconds=step_seconds)).astype("int64")


def step_timestamps(idx: Any, step_seconds: int = STEP_SECONDS, tz: Any = "UTC") -> pd.Series:
    """Start time of each step, in zone ``tz`` (None: naive UTC)."""
    utc = TIME_ORIGIN + pd.to_timedelta(np.asarray(idx, dtype=np.int64) * step_seconds, unit="s")
    return pd.Series(utc.tz_convert(tz) if tz is not None else utc.tz_localize(None))


def scaled_time_features(timestamps: pd.Series) -> pd.DataFrame:
    """data_contract.time_features, scaled to [-1, 1] as float32 (model inputs)."""
    raw = time_features(timestamps)
    scaled = {
        name: ((raw[name] - center) / half).astype(np.float32)
        for name, (center, half) in TIME_FEATURE_SCALING.items()
    }
    return pd.DataFrame(scaled, index=raw.index)[list(TIME_FEATURES)]


def fill_gaps(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per server and step between its first and last step (see module doc)."""
    bounds = frame.groupby("server_name", sort=True)["time_idx"].agg(["min", "max"])
    lengths = (bounds["max"] - bounds["min"] + 1).to_numpy()
    grid = pd.DataFrame(
        {
            "server_name": np.repeat(bounds.index.to_numpy(), lengths),
            "time_idx": np.concatenate(
                [np.arange(lo, hi + 1) for lo, hi in zip(bounds["min"], bounds["max"], strict=True)]
            ),
        }
    )
    full = grid.merge(frame, on=["server_name", "time_idx"], how="left")
    filled = full["state"].isna().to_numpy()
    metrics = list(METRIC_COLUMNS)
    full[metrics] = full.groupby("server_name", sort=False)[metrics].ffill()
    full.loc[filled, "state"] = OFFLINE_STATE
    full["filled"] = filled
    return full


def prepare_frame(frame: pd.DataFrame, step_seconds: int = STEP_SECONDS) -> pd.DataFrame:
    """Model-ready frame from a contract-valid one (validate it first)."""
    tz = frame["timestamp"].dt.tz
    base = frame[["server_name", "state", *METRIC_COLUMNS]].copy()
    base["time_idx"] = time_index(frame["timestamp"], step_seconds)
    base = base.iloc[np.argsort(frame["timestamp"].to_numpy(), kind="stable")]
    base = base.sort_values(["server_name", "time_idx"], kind="stable")
    if base.duplicated(["server_name", "time_idx"]).any():  # ticks: the daemon's rule
        base = aggregate_rows(base, ["server_name", "time_idx"]).reset_index()
        logger.info(
            "%d rows aggregated into %d steps (data_contract.AGGREGATION)", len(frame), len(base)
        )
    out = fill_gaps(base)
    if out["filled"].any():
        logger.info(
            "filled %d offline/missing steps (%.1f%%)", out.filled.sum(), 100 * out.filled.mean()
        )
    out["timestamp"] = step_timestamps(out["time_idx"], step_seconds, tz)
    out = pd.concat([out, scaled_time_features(out["timestamp"])], axis=1)
    mapping = create_server_mapping(out["server_name"].unique())["name_to_id"]
    out["server_id"] = out["server_name"].map(mapping).astype(str)
    out["state"] = out["state"].astype(str)
    out[list(METRIC_COLUMNS)] = out[list(METRIC_COLUMNS)].astype(np.float32)
    return out.reset_index(drop=True)


# --- dataset parameters --------------------------------------------------------------


def _identity_log1p() -> TorchNormalizer:
    """Fixed scaler x -> log1p(x) for the non-negative window centers/scales."""
    scaler = TorchNormalizer(method="identity", transformation="log1p")
    scaler.center_, scaler.scale_ = 0.0, 1.0  # fitted by definition
    return scaler


def make_target_normalizer(anchor: str = ANCHOR) -> MultiNormalizer:
    """One MetricNormalizer per target, in METRIC_COLUMNS order."""
    return MultiNormalizer(
        [
            MetricNormalizer(
                transformation=TRANSFORMATION.get(m), min_scale=MIN_SCALE[m], anchor=anchor
            )
            for m in METRIC_COLUMNS
        ]
    )


def make_scalers() -> dict[str, Any]:
    """Scalers for the non-target reals; None means fed as is."""
    scalers: dict[str, Any] = dict.fromkeys(
        [*MODEL_TIME_FEATURES, "relative_time_idx", "encoder_length"]
    )
    for m in METRIC_COLUMNS:
        scalers[f"{m}_center"] = _identity_log1p()
        scalers[f"{m}_scale"] = _identity_log1p()
    return scalers


def make_categorical_encoders() -> dict[str, NaNLabelEncoder]:
    """server_id learns the training servers; state knows all contract states."""
    state = NaNLabelEncoder(add_nan=True, warn=False).fit(pd.Series(VALID_STATES))
    return {"server_id": NaNLabelEncoder(add_nan=True, warn=False), "state": state}


def dataset_parameters(
    encoder_length: int = ENCODER_LENGTH,
    horizon: int = HORIZON,
    min_encoder_length: int | None = None,
    anchor: str = ANCHOR,
) -> dict[str, Any]:
    """Keyword arguments of TimeSeriesDataSet for a fresh (unfitted) training set."""
    return dict(
        time_idx="time_idx",
        target=list(METRIC_COLUMNS),
        group_ids=["server_id"],
        max_encoder_length=encoder_length,
        min_encoder_length=min_encoder_length or encoder_length,
        max_prediction_length=horizon,
        static_categoricals=[],
        time_varying_known_reals=list(MODEL_TIME_FEATURES),
        time_varying_unknown_categoricals=["state"],
        time_varying_unknown_reals=list(METRIC_COLUMNS),
        categorical_encoders=make_categorical_encoders(),
        target_normalizer=make_target_normalizer(anchor),
        scalers=make_scalers(),
        add_relative_time_idx=True,
        add_target_scales=True,
        allow_missing_timesteps=False,
    )


# --- loss weights and JSON ---------------------------------------------------------


def target_loss_weights(frame: pd.DataFrame, skip: Any = ()) -> list[float]:
    """MultiLoss weights ~ 1 / std of each target (floored), averaging to 1; the targets
    in ``skip`` (forecast by a rule, see training.deterministic) get weight 0.

    The quantile loss is computed on real units, so without weights the targets with
    large numbers (percentages, counters) would dominate the 14-target sum.
    """
    std = frame[list(METRIC_COLUMNS)].astype(np.float64).std().fillna(0.0)
    inverse = np.array(
        [0.0 if m in skip else 1.0 / max(std[m], LOSS_SCALE_FLOOR[m]) for m in METRIC_COLUMNS]
    )
    return (inverse * len(inverse) / inverse.sum()).tolist()


def parameters_to_json(dataset: TimeSeriesDataSet) -> dict[str, Any]:
    """The dataset's parameters (fitted encoders and normalisers included) as JSON."""
    return to_json(dataset.get_parameters())


def dataset_from_json(
    parameters: dict[str, Any], frame: pd.DataFrame, predict: bool = False, **update: Any
) -> TimeSeriesDataSet:
    """A dataset over ``frame`` with the saved encoders/normalisers (from config.json).

    The saved min_prediction_idx is the training data's first step; new data (another
    year, a backtest, live buffers) may start anywhere, so it defaults to frame's first.
    """
    update.setdefault("min_prediction_idx", int(frame["time_idx"].min()))
    return TimeSeriesDataSet.from_parameters(
        from_json(parameters), frame, predict=predict, stop_randomization=True, **update
    )
