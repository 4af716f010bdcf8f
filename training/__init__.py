"""Training pipeline: dataset building, TFT training and the pickle-free model artifact.

Modules: dataset (contract frame -> model-ready frame, dataset parameters), splits
(--until / --holdout-servers / --max-servers, time split, TimeSeriesDataSets),
normalizers (MetricNormalizer), codec (allow-listed JSON codec), model (build/rebuild the
TFT), inputs (input layout and its vectorised builder, for inference and training),
batches (fast training batches), fitting (loaders, lightning fit), settings (options and
hardware defaults), metadata (config.json / training_info.json), artifact (save,
validate, load) and tft_trainer (the CLI: ``python -m training.tft_trainer``).

``from training import load_artifact, ArtifactError, LoadedModel`` is resolved lazily so
that importing the package stays cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ArtifactError", "LoadedModel", "load_artifact"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from training import artifact

        return getattr(artifact, name)
    raise AttributeError(f"module 'training' has no attribute {name!r}")
