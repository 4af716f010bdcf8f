"""Building the Temporal Fusion Transformer, and rebuilding it from JSON hyper-parameters."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pytorch_forecasting import TemporalFusionTransformer, TimeSeriesDataSet
from pytorch_forecasting.metrics import MultiLoss, QuantileLoss
from torch import nn

from data_contract import METRIC_COLUMNS, QUANTILE_LEVELS
from training import recurrence
from training.dataset import STEP_SECONDS

QUANTILES = QUANTILE_LEVELS  # (0.1, 0.5, 0.9): the contract's p10, p50, p90
#: hparams that are objects: stored through the codec or not at all.
_OBJECT_HPARAMS = ("loss", "logging_metrics", "output_transformer", "dataset_parameters")


@contextmanager
def quiet_model_init() -> Iterator[None]:
    """Silence lightning's advice to not store the loss module in hparams (upstream)."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore",
            message=r"Attribute '(loss|logging_metrics)' is an instance of `nn.Module`",
            category=UserWarning,
        )
        yield


def make_loss(weights: list[float] | None = None) -> MultiLoss:
    """One QuantileLoss(0.1, 0.5, 0.9) per target, combined (optionally weighted)."""
    losses = [QuantileLoss(list(QUANTILES)) for _ in METRIC_COLUMNS]
    return MultiLoss(losses, weights=weights)


def build_model(
    dataset: TimeSeriesDataSet,
    *,
    hidden_size: int = 16,
    attention_head_size: int = 1,
    hidden_continuous_size: int = 8,
    dropout: float = 0.1,
    learning_rate: float = 3e-3,
    loss_weights: list[float] | None = None,
    optimizer_params: dict[str, Any] | None = None,
    recurrence_inputs: tuple[str, ...] = (),
    step_seconds: int = STEP_SECONDS,
) -> TemporalFusionTransformer:
    """A fresh TFT for ``dataset`` (no logging metrics, no interpretation logging).

    optimizer_params go to torch.optim.Adam, e.g. {"fused": True}: one kernel for all
    parameter tensors (837 at hidden size 16) instead of a Python loop over them (~10 vs
    ~50 ms per step on a CPU, same update rule); not with 16-bit mixed precision, whose
    gradient scaler lightning cannot combine with a fused optimiser.

    recurrence_inputs: training.recurrence input sets ("summaries", "yesterday") added to
    the dataset's inputs (built by training.inputs, not by the dataset)."""
    extra = recurrence.model_overrides(dataset, recurrence_inputs, step_seconds)
    with quiet_model_init():
        return TemporalFusionTransformer.from_dataset(
            dataset,
            **extra,
            hidden_size=hidden_size,
            attention_head_size=attention_head_size,
            hidden_continuous_size=min(hidden_continuous_size, hidden_size),
            dropout=dropout,
            learning_rate=learning_rate,
            loss=make_loss(loss_weights),
            logging_metrics=nn.ModuleList([]),
            log_interval=-1,
            reduce_on_plateau_patience=4,
            optimizer_params=optimizer_params,
        )


def architecture_to_json(model: TemporalFusionTransformer) -> dict[str, Any]:
    """The model's plain hyper-parameters (objects are stored separately)."""
    hparams = {k: v for k, v in model.hparams.items() if k not in _OBJECT_HPARAMS}
    hparams["embedding_sizes"] = {k: list(v) for k, v in hparams["embedding_sizes"].items()}
    return hparams


def model_from_json(
    architecture: dict[str, Any], loss: MultiLoss, output_transformer: Any
) -> TemporalFusionTransformer:
    """Rebuild the (untrained) network from architecture_to_json output."""
    kwargs = dict(architecture)
    kwargs["embedding_sizes"] = {k: tuple(v) for k, v in kwargs["embedding_sizes"].items()}
    with quiet_model_init():
        return TemporalFusionTransformer(
            **kwargs,
            loss=loss,
            output_transformer=output_transformer,
            logging_metrics=nn.ModuleList([]),
        )
