"""Faster, numerically equivalent CPU forwards for one TemporalFusionTransformer instance.

accelerate(model) sets instance attributes only (``forward`` of the variable selection
networks, of two big GatedResidualNetworks and of the attention; the model's
``get_attention_mask``): other instances, the classes and the state_dict are untouched.
Each fast forward computes the library's math in another order, so results agree up to
float32 rounding (inference.fast_base.FORWARD_TOLERANCE, norm-wise; measured closer to a
float64 reference than the library itself):

* VariableSelectionNetwork: see inference.fast_vsn (all per-variable GRNs as one
  batched bmm, closed-form residual LayerNorm, time-constant inputs once per step).
* GatedResidualNetwork (input size == output size): in chunks of rows, fc2 and the
  GLU's fc fused into one Linear; a context constant over time projected once.
* InterpretableMultiHeadAttention (one head): bmm / scale / mask / softmax / bmm in
  chunks of samples. get_attention_mask: for equal lengths the library's mask of one
  sample, expanded; it is applied as score * keep + fill, equal to masked_fill.

Training mode, autograd, or inputs of another dtype/device use the library's forward;
so does any sub-module whose structure is not covered (or that fails a self-check on
random inputs when swapped in: against the library's forward in float64, with the tests'
criterion, fast_base.agrees). Precomputed weights are rebuilt when a parameter changes in
place or moves; call accelerate() again after replacing parameter objects.
"""

from __future__ import annotations

import copy
import logging
import math
import types
from typing import Any

import torch
import torch.nn.functional as F
from pytorch_forecasting import TemporalFusionTransformer
from pytorch_forecasting.models.temporal_fusion_transformer.sub_modules import (
    GatedResidualNetwork,
    InterpretableMultiHeadAttention,
    ScaledDotProductAttention,
    VariableSelectionNetwork,
)
from torch import Tensor, nn

from inference.fast_base import (
    Fast,
    Unsupported,
    agrees,
    check_grn,
    chunk_rows,
    context_term,
    grn_tail,
)
from inference.fast_vsn import FastVSN

logger = logging.getLogger(__name__)

VSN_NAMES = (
    "static_variable_selection",
    "encoder_variable_selection",
    "decoder_variable_selection",
)
GRN_NAMES = ("static_enrichment", "pos_wise_ff")


class _FastGRN(Fast):
    """GatedResidualNetwork.forward (input size == output size) in chunks of rows."""

    def prepare(self) -> None:
        grn = check_grn(self.module, self.module.context_size is not None, False)
        wt, bt = grn_tail(grn)
        self.wt, self.bt, self.norm = self._to(wt.T), self._to(bt), grn.gate_norm.add_norm.norm
        self.wctx = None if grn.context_size is None else grn.context.weight.detach()

    def example(self, gen: torch.Generator) -> tuple[Any, ...]:
        g = self.module
        ctx = None if g.context_size is None else self._rand(gen, 3, 1, g.context_size)
        return self._rand(gen, 3, 4, g.input_size), None if ctx is None else ctx.expand(3, 4, -1)

    def run(
        self, x: Tensor, context: Tensor | None = None, residual: Tensor | None = None
    ) -> Tensor:
        g, lead, nm = self.module, x.shape[:-1], self.norm
        xs = x.reshape(math.prod(lead), -1)
        rs = xs if residual is None else residual.reshape(xs.shape[0], -1)
        proj = None if context is None else context_term(context, self.wctx, lead)
        out = x.new_empty(xs.shape[0], g.output_size)
        step = chunk_rows(4 * g.output_size)
        for r0 in range(0, xs.shape[0], step):
            rows = slice(r0, r0 + step)
            pre = g.fc1(xs[rows])
            if proj is not None:
                pre.add_(proj[rows])
            z = F.glu(torch.addmm(self.bt, F.elu_(pre), self.wt), -1).add_(rs[rows])
            out[rows] = F.layer_norm(z, nm.normalized_shape, nm.weight, nm.bias, nm.eps)
        return out.view(*lead, -1)


class _FastAttention(Fast):
    """One-head InterpretableMultiHeadAttention.forward in chunks of samples."""

    def prepare(self) -> None:
        if self.module.n_head != 1 or type(self.module.attention) is not ScaledDotProductAttention:
            raise Unsupported("attention with more than one head or another scoring")

    def example(self, gen: torch.Generator) -> tuple[Any, ...]:
        q, k = (self._rand(gen, 2, n, self.module.d_model) for n in (3, 5))
        return q, k, k, (torch.rand(3, 5, generator=gen) > 0.7).to(self.device).expand(2, -1, -1)

    def run(
        self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        m, sdp = self.module, self.module.attention
        vs, qs, ks = m.v_layer(v), m.q_layers[0](q), m.k_layers[0](k)
        B, Tq, Tk = q.shape[0], q.shape[1], k.shape[1]
        attn, head = qs.new_empty(B, Tq, Tk), qs.new_empty(B, Tq, vs.shape[-1])
        dim = torch.as_tensor(ks.size(-1), dtype=attn.dtype, device=attn.device).sqrt()
        shared = mask is not None and mask.dim() == 3 and mask.stride(0) == 0
        if shared:  # one mask for all samples: score * keep + fill == masked_fill
            keep = (~mask[0]).to(attn.dtype)
            fill = torch.zeros_like(keep).masked_fill_(mask[0], sdp.mask_bias)
        step = chunk_rows(4 * Tq * Tk)
        scratch = attn.new_empty(min(step, B), Tq, Tk)
        for b0 in range(0, B, step):
            rows = slice(b0, b0 + step)
            a = torch.bmm(qs[rows], ks[rows].transpose(1, 2), out=scratch[: len(qs[rows])])
            if sdp.scale:
                a.div_(dim)
            if shared:
                a.mul_(keep).add_(fill)
            elif mask is not None:
                a.masked_fill_(mask[rows], sdp.mask_bias)
            torch.bmm(torch.softmax(a, 2, out=attn[rows]), vs[rows], out=head[rows])
        return m.w_h(head), attn.unsqueeze(2)


def _attention_mask(
    self: TemporalFusionTransformer, encoder_lengths: Tensor, decoder_lengths: Tensor
) -> Tensor:
    """The library's mask; for equal lengths built for one sample and expanded (a view)."""
    library, n = type(self).get_attention_mask, len(encoder_lengths)
    equal = n > 1 and bool((encoder_lengths == encoder_lengths[0]).all())
    if equal and bool((decoder_lengths == decoder_lengths[0]).all()):
        return library(self, encoder_lengths[:1], decoder_lengths[:1]).expand(n, -1, -1)
    return library(self, encoder_lengths, decoder_lengths)


def _float64(value: Any) -> Any:
    """Floating tensors (also inside tuples, lists and dicts) as float64."""
    if isinstance(value, Tensor):
        return value.double() if value.is_floating_point() else value
    if isinstance(value, dict):
        return {k: _float64(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return type(value)(_float64(v) for v in value)
    return value


def _self_check(module: nn.Module, fast: Fast) -> bool:
    """The fast forward matches the library's math on random inputs (eval mode), within
    fast_base.FORWARD_TOLERANCE (the criterion of the tests): the library's forward run
    in float64 on a copy, so that the library's own float32 rounding does not count (its
    ResampleNorm interpolates in float32: 7e-5 to 1.1e-4 off in a variable selection of 67
    static inputs, where the fast path is 3.5e-7 off)."""
    args = fast.example(torch.Generator().manual_seed(0))
    reference = copy.deepcopy(module).double().eval()
    with torch.inference_mode():
        want = type(reference).forward(reference, *_float64(args))
        got = fast.run(*args)
    pairs = zip(*((got, want) if isinstance(got, tuple) else ((got,), (want,))), strict=True)
    return all(agrees(g, w.to(g.dtype)) for g, w in pairs)


def _swap(module: nn.Module | None, kind: type, fast_type: type[Fast]) -> None:
    if type(module) is not kind or "forward" in vars(module):
        return  # absent, another class, or already accelerated
    try:
        fast = fast_type(module)
        same = _self_check(module, fast)
    except Exception as err:  # anything unforeseen: keep the library's forward
        logger.info("%s keeps the library forward: %s", kind.__name__, err)
        return
    if same:
        module.forward = fast
    else:
        logger.warning("%s: fast forward disagrees, the library's is kept", kind.__name__)


def accelerate(model: TemporalFusionTransformer) -> TemporalFusionTransformer:
    """Swap faster, numerically equivalent forwards into this model instance's slow
    sub-modules (instance-level: other instances and the class are untouched). Returns
    the model. Idempotent; sub-modules the fast path does not cover are left as they are."""
    for name in VSN_NAMES:
        _swap(getattr(model, name, None), VariableSelectionNetwork, FastVSN)
    for name in GRN_NAMES:
        _swap(getattr(model, name, None), GatedResidualNetwork, _FastGRN)
    _swap(getattr(model, "multihead_attn", None), InterpretableMultiHeadAttention, _FastAttention)
    if isinstance(model, TemporalFusionTransformer) and "get_attention_mask" not in vars(model):
        model.get_attention_mask = types.MethodType(_attention_mask, model)
    return model
