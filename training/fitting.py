"""The lightning part of training: loaders, early stopping with in-memory best weights.

Two loaders give the same batches (tests/test_training.py proves it window for window):
make_window_loaders (default, training.batches: vectorised, ~30x cheaper per batch,
with a training window stride) and make_loaders (pytorch-forecasting's
TimeSeriesDataSet loaders, every window, also for variable encoder lengths). For both
training AND validation the fast loaders build every batch; the TimeSeriesDataSets only
define the inputs, the normalisers and the architecture. A model with training.recurrence
inputs needs the fast loaders (the library does not build those inputs).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import lightning.pytorch as pl
import torch
import torch.utils.deterministic
from lightning.pytorch.callbacks import Callback, EarlyStopping
from pytorch_forecasting import TemporalFusionTransformer, TimeSeriesDataSet
from torch.utils.data import DataLoader

from training.batches import (
    WindowDataset,
    group_codes,
    window_arrays,
    window_loader,
)
from training.splits import Splits


class BestState(Callback):
    """Early-stopping companion: keeps a copy of the best weights in memory."""

    def __init__(self) -> None:
        self.best_loss, self.best_epoch = math.inf, -1
        self.train_losses: list[float] = []
        self.state: dict[str, torch.Tensor] | None = None

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        loss = trainer.callback_metrics.get("train_loss_epoch")
        if loss is not None:
            self.train_losses.append(float(loss))

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        loss = trainer.callback_metrics.get("val_loss")
        if trainer.sanity_checking or loss is None or not float(loss) < self.best_loss:
            return
        self.best_loss, self.best_epoch = float(loss), trainer.current_epoch
        self.state = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}


def make_loaders(
    train: TimeSeriesDataSet,
    val: TimeSeriesDataSet,
    batch_size: int,
    num_workers: int,
) -> tuple[DataLoader, DataLoader]:
    """Shuffled training loader and a validation loader (the library's batches)."""
    extra = {"num_workers": num_workers, "persistent_workers": num_workers > 0}
    return (
        train.to_dataloader(train=True, batch_size=batch_size, **extra),
        val.to_dataloader(train=False, batch_size=batch_size, **extra),
    )


def make_window_loaders(
    splits: Splits,
    config: dict[str, Any],
    batch_size: int,
    strides: tuple[int, int],
    num_workers: int = 0,
) -> tuple[DataLoader, DataLoader]:
    """Fast loaders (training.batches): shuffled training windows at stride strides[0]
    with a random phase per epoch; validation windows in
    order at the fixed subsample strides[1] (phase 0)."""
    train = window_arrays(splits.train_part, config, group_codes(splits.training))
    val = window_arrays(splits.val_part, config, group_codes(splits.validation), splits.cutoff + 1)
    return (
        window_loader(
            WindowDataset(train, config),
            batch_size,
            strides[0],
            shuffle=True,
            num_workers=num_workers,
        ),
        window_loader(WindowDataset(val, config), batch_size, strides[1], False, num_workers),
    )


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op thread count for the block (None: leave it), restored after."""
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def quiet_lightning() -> Iterator[None]:
    """Silence two upstream warnings during fit: lightning's worker-count advice (workers
    come from the profile) and torch 2.13's LeafSpec deprecation inside lightning 2.6.
    Also restores torch's global deterministic-algorithms flag, which
    Trainer(deterministic=True) sets for the whole process, and turns off its companion
    fill_uninitialized_memory meanwhile: a debugging aid that writes NaN into every new
    tensor (about 5 % of a CPU training step) and changes no result."""
    deterministic = torch.are_deterministic_algorithms_enabled()
    fill = torch.utils.deterministic.fill_uninitialized_memory
    torch.utils.deterministic.fill_uninitialized_memory = False
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
        warnings.filterwarnings(
            "ignore",
            message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
            category=FutureWarning,
        )
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(deterministic)
            torch.utils.deterministic.fill_uninitialized_memory = fill


def fit(
    model: TemporalFusionTransformer,
    loaders: tuple[DataLoader, DataLoader],
    trainer_kwargs: dict[str, Any],
    patience: int,
    callbacks: list[Callback] | None = None,
) -> dict[str, Any]:
    """Train with early stopping on val_loss; leaves the best weights in ``model``.
    ``callbacks`` are added to the trainer's (e.g. timers)."""
    best, stop = BestState(), EarlyStopping(monitor="val_loss", patience=patience)
    with quiet_lightning():
        trainer = pl.Trainer(
            callbacks=[stop, best, *(callbacks or [])],
            log_every_n_steps=min(50, max(1, len(loaders[0]))),
            enable_checkpointing=False,
            logger=False,
            num_sanity_val_steps=0,
            devices=1,
            **trainer_kwargs,
        )
        trainer.fit(model, train_dataloaders=loaders[0], val_dataloaders=loaders[1])
    if best.state is not None:
        model.load_state_dict(best.state)
    model.eval()
    return {
        "best_loss": best.best_loss,
        "best_epoch": best.best_epoch,
        "train_losses": best.train_losses,
        "epochs_run": trainer.current_epoch,
    }
