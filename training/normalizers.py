"""Target normaliser used for all 14 metrics: an EncoderNormalizer with two fixes.

pytorch-forecasting's EncoderNormalizer re-fits (center, scale) on every window's encoder,
so servers never seen in training (and real CloudWatch series) are normalised exactly
like training servers. MetricNormalizer adds:

* ``min_scale``: a floor on the fitted scale (in transformed units). A series that was
  flat for the whole encoder (swap at 0 %, a constant counter) would otherwise get a
  scale of ~1e-7, which pins every forecast to the encoder mean and blows up the
  normalised value of any later change.
* transformation ``"log1p"`` with an exact inverse (``expm1``). The stock ``"log1p"``
  maps outputs back with ``exp`` (documented upstream), i.e. off by one in real units.
* read-only numpy inputs (pandas 3 copy-on-write hands those out) are copied before
  ``torch.from_numpy``, which would otherwise warn about non-writable arrays.

Per window, for the encoder values ``y`` of one target (``t`` = transformation)::

    center = mean(t(y)); scale = max(std(t(y), ddof=1) + eps, min_scale)
    network input = (t(value) - center) / scale;  forecast = t^-1(output * scale + center)

with eps = float32 machine epsilon (torch path, as used per window).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from pytorch_forecasting.data.encoders import EncoderNormalizer, Expm1Transform

TRANSFORMATIONS = {
    **EncoderNormalizer.TRANSFORMATIONS,
    "log1p": {
        "forward": torch.log1p,
        "reverse": torch.expm1,
        "inverse": torch.expm1,
        "inverse_torch": Expm1Transform(),
    },
}


class MetricNormalizer(EncoderNormalizer):
    """EncoderNormalizer with a scale floor and an exact log1p round trip."""

    TRANSFORMATIONS = TRANSFORMATIONS

    def __init__(
        self,
        method: str = "standard",
        center: bool = True,
        max_length: int | list[int] | None = None,
        transformation: str | None = None,
        method_kwargs: dict[str, Any] | None = None,
        min_scale: float = 0.0,
    ) -> None:
        super().__init__(
            method=method,
            center=center,
            max_length=max_length,
            transformation=transformation,
            method_kwargs=method_kwargs,
        )
        self.min_scale = min_scale

    def _set_parameters(self, y_center: Any, y_scale: Any) -> None:
        super()._set_parameters(y_center=y_center, y_scale=y_scale)
        if isinstance(self.scale_, torch.Tensor):
            self.scale_ = self.scale_.clamp(min=self.min_scale)
        else:
            dtype = np.asarray(self.scale_).dtype
            self.scale_ = np.maximum(self.scale_, self.min_scale).astype(dtype)

    def preprocess(self, y: Any) -> Any:
        if isinstance(y, np.ndarray) and not y.flags.writeable:
            y = y.copy()
        return super().preprocess(y)
