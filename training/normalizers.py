"""Target normaliser used for all 14 metrics: an EncoderNormalizer fitted on each window.

pytorch-forecasting's EncoderNormalizer re-fits (center, scale) on every window's encoder,
so servers never seen in training (and real series) are normalised exactly like training
servers. MetricNormalizer adds:

* ``anchor="last"``: the center is the encoder's LAST value, not its mean, so a network
  output of 0 means "stays where it is" (persistence costs the model nothing), and the
  scale is the root-mean-square step-to-step change of the encoder. A regime change
  inside the window (a batch job that ended) no longer drags the forecast towards the
  24-hour mean, and one jump of any size moves the normalised inputs by at most
  sqrt(encoder_length - 1). ``anchor="mean"`` (models before 2026-12) is the library's
  mean/std.
* ``min_scale``: a floor on the fitted scale (in transformed units), so a flat series
  (swap at 0 %, a constant counter) does not get a scale of ~1e-7.
* transformations with exact inverses: ``"log1p"`` (``expm1``; the stock one maps back
  with ``exp``) and ``"log1p_kb"`` = log1p(1000 x) for rates in MB/s, so KB/s rates keep
  their resolution (log1p of 0.002 MB/s is 0.002: below any sensible scale floor).
* read-only numpy inputs (pandas 3 copy-on-write hands those out) are copied before
  ``torch.from_numpy``, which would otherwise warn about non-writable arrays.

Per window, for the encoder values ``y`` of one target (``t`` = transformation)::

    anchor "last": center = t(y)[-1]; scale = max(sqrt(mean(diff(t(y))^2)), min_scale)
    anchor "mean": center = mean(t(y)); scale = max(std(t(y), ddof=1) + eps, min_scale)
    network input = (t(value) - center) / scale;  forecast = t^-1(output * scale + center)

with eps = float32 machine epsilon. training.inputs computes the same numbers for the
fast batches and the daemon (anchor_parameters is shared by both paths).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from pytorch_forecasting.data.encoders import EncoderNormalizer, Expm1Transform

KB_PER_MB = 1000.0
ANCHORS = ("mean", "last")


def _log1p_kb(y: torch.Tensor) -> torch.Tensor:
    return torch.log1p(y * KB_PER_MB)


def _expm1_kb(y: torch.Tensor) -> torch.Tensor:
    return torch.expm1(y) / KB_PER_MB


TRANSFORMATIONS = {
    **EncoderNormalizer.TRANSFORMATIONS,
    "log1p": {
        "forward": torch.log1p,
        "reverse": torch.expm1,
        "inverse": torch.expm1,
        "inverse_torch": Expm1Transform(),
    },
    "log1p_kb": {"forward": _log1p_kb, "reverse": _expm1_kb, "inverse": _expm1_kb},
}


def anchor_parameters(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(center, scale) of anchor "last" along the last axis, before the scale floor."""
    step = torch.diff(y, dim=-1)
    return y[..., -1], torch.sqrt(torch.mean(step * step, dim=-1))


class MetricNormalizer(EncoderNormalizer):
    """EncoderNormalizer with a last-value anchor, a scale floor and exact inverses."""

    TRANSFORMATIONS = TRANSFORMATIONS

    def __init__(
        self,
        method: str = "standard",
        center: bool = True,
        max_length: int | list[int] | None = None,
        transformation: str | None = None,
        method_kwargs: dict[str, Any] | None = None,
        min_scale: float = 0.0,
        anchor: str = "mean",
    ) -> None:
        super().__init__(
            method=method,
            center=center,
            max_length=max_length,
            transformation=transformation,
            method_kwargs=method_kwargs,
        )
        if anchor not in ANCHORS:
            raise ValueError(f"anchor must be one of {ANCHORS}, got {anchor!r}")
        self.min_scale, self.anchor = min_scale, anchor

    def _set_parameters(self, y_center: Any, y_scale: Any) -> None:
        if self.anchor == "last":
            self._set_last_anchor(y_center)
            return
        super()._set_parameters(y_center=y_center, y_scale=y_scale)
        if isinstance(self.scale_, torch.Tensor):
            self.scale_ = self.scale_.clamp(min=self.min_scale)
        else:
            dtype = np.asarray(self.scale_).dtype
            self.scale_ = np.maximum(self.scale_, self.min_scale).astype(dtype)

    def _set_last_anchor(self, y: Any) -> None:
        as_numpy = not isinstance(y, torch.Tensor)
        tensor = torch.as_tensor(np.asarray(y) if as_numpy else y)
        center, scale = anchor_parameters(tensor)
        scale = scale.clamp(min=self.min_scale)
        if as_numpy:
            dtype = np.asarray(y).dtype
            center, scale = center.numpy().astype(dtype), scale.numpy().astype(dtype)
        self.center_, self.scale_ = center, scale

    def preprocess(self, y: Any) -> Any:
        if isinstance(y, np.ndarray) and not y.flags.writeable:
            y = y.copy()
        return super().preprocess(y)
