"""Shared parts of the accelerated TFT forwards (see inference.fast_tft).

Fast is an instance-level forward: it runs the fast path in eval mode under no autograd
for inputs of the prepared dtype and device, the library's forward otherwise, and
rebuilds its precomputed weights when a parameter changes in place. The helpers turn
pytorch-forecasting sub-modules into float64 matrices for that precomputation.
FORWARD_TOLERANCE and deviation() say when a fast forward agrees with the library's: the
self-check at swap time (inference.fast_tft) and the tests use both.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from pytorch_forecasting.models.temporal_fusion_transformer.sub_modules import (
    AddNorm,
    GatedResidualNetwork,
    ResampleNorm,
)
from torch import Tensor, nn

CHUNK_ELEMENTS = 1 << 20  # floats of a chunk's largest buffer, per torch thread (~4 MB)
F64 = torch.float64

# The fast forwards compute the library's float32 arithmetic in another order, and torch
# picks other kernels per CPU (ATEN_CPU_CAPABILITY default / avx2 / avx512), so the two
# agree to rounding, not bit for bit. Rounding error is relative to the magnitudes summed,
# not to each result: a sum that cancels to near 0 keeps its terms' absolute error. So
# agreement is measured norm-wise, max|got - want| / max|want| over a tensor, in the
# network's own units: hidden states, attention and variable weights, outputs before the
# target normaliser's inverse transform (expm1 makes an absolute error there a relative
# one in real units: 1.2e-5 of 27,000 is 0.3). A sum of n float32 terms taken in another
# order moves by about sqrt(n) * 2**-24 of their magnitude (n * 2**-24 at worst); the
# longest sums here have n = 384 (attention over encoder and decoder steps), and about a
# dozen stages run in sequence (variable selection, LSTM, gates, enrichment, attention,
# position-wise GRN, output layer): 12 * sqrt(384) * 2**-24 = 1.4e-5. The tolerance is 7
# times that. Measured on the shipped model (batches of 1-128 windows, all three
# capabilities): at most 5.5e-6; a 0.1 % error in the variable selection networks'
# LayerNorm scale shows as 3.3e-3.
FORWARD_TOLERANCE = 1e-4


class Unsupported(ValueError):
    """The sub-module's structure is not covered by the fast path."""


def f64(t: Tensor) -> Tensor:
    return t.detach().to(device="cpu", dtype=F64)


def deviation(got: Tensor, want: Tensor) -> float:
    """Norm-wise relative difference max|got - want| / max|want| (see FORWARD_TOLERANCE);
    0.0 for equal tensors, inf for other shapes or a difference from all zeros, NaN for NaN."""
    if got.shape != want.shape:
        return math.inf
    diff = float((got.double() - want.double()).abs().max()) if got.numel() else 0.0
    if diff == 0.0:
        return 0.0
    scale = float(want.double().abs().max())
    return diff / scale if scale > 0 else math.inf


def agrees(got: Tensor, want: Tensor) -> bool:
    """The two outputs are equal up to float32 rounding (FORWARD_TOLERANCE, norm-wise)."""
    return deviation(got, want) <= FORWARD_TOLERANCE


def chunk_rows(per_row: int) -> int:
    """Rows per chunk: about CHUNK_ELEMENTS floats per thread (up to 4 threads)."""
    return max(1, CHUNK_ELEMENTS * min(torch.get_num_threads(), 4) // per_row)


def resample_matrix(rn: ResampleNorm) -> Tensor:
    """Matrix M (in, out): x @ M is what ResampleNorm feeds its LayerNorm."""
    m = torch.eye(rn.input_size, dtype=F64)
    if rn.input_size != rn.output_size:
        m = F.interpolate(m.unsqueeze(1), rn.output_size, mode="linear", align_corners=True)[:, 0]
    return m * (torch.sigmoid(f64(rn.mask)) * 2.0) if rn.trainable_add else m


def norm_affine(norm: nn.LayerNorm) -> tuple[Tensor, Tensor]:
    ones = torch.ones(norm.normalized_shape, dtype=F64)
    weight = ones if norm.weight is None else f64(norm.weight)
    return weight, ones * 0 if norm.bias is None else f64(norm.bias)


def check_grn(grn: nn.Module, context: bool, resample: bool) -> GatedResidualNetwork:
    an = getattr(getattr(grn, "gate_norm", None), "add_norm", None)
    ok = type(grn) is GatedResidualNetwork and not grn.residual and type(an) is AddNorm
    ok = ok and not an.trainable_add and not hasattr(an, "resample") and grn.elu.alpha == 1.0
    ok = ok and (grn.context_size is not None) == context
    ok = ok and hasattr(grn, "resample_norm") == resample == (grn.input_size != grn.output_size)
    if not ok:
        raise Unsupported(f"GatedResidualNetwork layout: {grn}")
    return grn


def grn_tail(grn: GatedResidualNetwork) -> tuple[Tensor, Tensor]:
    """fc2 then the GLU's fc, no non-linearity between: one Linear (weight, bias)."""
    fc2, fcg = grn.fc2, grn.gate_norm.glu.fc
    return f64(fcg.weight) @ f64(fc2.weight), f64(fcg.weight) @ f64(fc2.bias) + f64(fcg.bias)


def context_term(context: Tensor, weight: Tensor, lead: torch.Size) -> Tensor:
    """A GRN's context term (rows, hidden); a context constant over time projected once."""
    if context.dim() > 2 and all(st == 0 for st in context.stride()[1:-1]):
        base = F.linear(context[(slice(None),) + (0,) * (context.dim() - 2)], weight)
        return base[:, None].expand(lead[0], math.prod(lead[1:]), -1).reshape(-1, weight.shape[0])
    return F.linear(context.reshape(math.prod(lead), -1), weight)


class Fast:
    """An instance-level forward: the fast path, or the library's when it does not apply."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        self._prepare_all()

    def _state(self) -> list[tuple[Any, ...]]:
        return [(p._version, p.dtype, p.device) for p in self.params]

    def _prepare_all(self) -> None:
        self.params = list(self.module.parameters())
        self.versions = self._state()
        self.dtype, self.device = self.params[0].dtype, self.params[0].device
        self.prepare()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        m, first = self.module, (args or tuple(kwargs.values()))[0]
        if m.training or torch.is_grad_enabled():
            return type(m).forward(m, *args, **kwargs)
        if self._state() != self.versions:
            self._prepare_all()
        first = first if isinstance(first, Tensor) else next(iter(first.values()))
        if (first.dtype, first.device) != (self.dtype, self.device):
            return type(m).forward(m, *args, **kwargs)
        return self.run(*args, **kwargs)

    def _to(self, t: Tensor) -> Tensor:
        return t.to(dtype=self.dtype, device=self.device)

    def _rand(self, gen: torch.Generator, *shape: int) -> Tensor:
        return self._to(torch.randn(*shape, generator=gen) * 2)
