"""Faster, numerically equivalent CPU forwards for one TemporalFusionTransformer instance.

accelerate(model) sets instance attributes only (``forward`` of the variable selection
networks, of two big GatedResidualNetworks and of the attention; the model's
``get_attention_mask``): other instances, the classes and the state_dict are untouched.
Each fast forward computes the library's math in another order, so results agree up to
float32 rounding (measured closer to a float64 reference than the library itself):

* VariableSelectionNetwork. A real variable is a scalar s; its prescaler Linear(1, k)
  and everything up to the first non-linearity are affine in s: fc1(prescale(s)) =
  s*u + c and the ResampleNorm residual (align_corners linear interpolation = a fixed
  matrix, times the trainable gate) is s*a + b. With a, b centred, LayerNorm(s*a + b) =
  (s*a + b) * rstd(s), var(s) = p*(s + s0)**2 + m (non-negative terms: no cancellation).
  So all per-variable GRNs run as one bmm over (variables, features, rows) with stacked
  weights (fc2 and the GLU's fc fused into one Linear), the residual as a rank-3 update,
  and the GateAddNorm LayerNorm, per-variable affine and softmax-weighted sum in a few
  passes. The flattened GRN takes its fc1 and residual from the scalars in one addmm
  (prescalers folded in). Variables equal in every sample (time features) are computed
  once per step. Rows are processed in cache-sized chunks.
* GatedResidualNetwork (input size == output size): chunks, fc2 + GLU fc fused.
* A GRN context that is constant over time (the expanded static context) is projected
  once per sample instead of once per row.
* InterpretableMultiHeadAttention (one head): bmm / scale / mask / softmax / bmm in
  chunks of samples. get_attention_mask: for equal lengths the library's mask of one
  sample, expanded; it is applied as score * keep + fill, equal to masked_fill.

Training mode, autograd, or inputs of another dtype/device use the library's forward;
so does any sub-module whose structure is not covered (or that fails a self-check on
random inputs when swapped in). Precomputed weights are rebuilt when a parameter changes
in place or moves; call accelerate() again after replacing parameter objects.
"""

from __future__ import annotations

import logging
import math
import types
from typing import Any

import torch
import torch.nn.functional as F
from pytorch_forecasting import TemporalFusionTransformer
from pytorch_forecasting.models.temporal_fusion_transformer.sub_modules import (
    AddNorm,
    GatedResidualNetwork,
    InterpretableMultiHeadAttention,
    ResampleNorm,
    ScaledDotProductAttention,
    VariableSelectionNetwork,
)
from torch import Tensor, nn

logger = logging.getLogger(__name__)

VSN_NAMES = (
    "static_variable_selection",
    "encoder_variable_selection",
    "decoder_variable_selection",
)
GRN_NAMES = ("static_enrichment", "pos_wise_ff")
CHUNK_ELEMENTS = 1 << 20  # floats of a chunk's largest buffer, per torch thread (~4 MB)
_F64 = torch.float64


class _Unsupported(ValueError):
    """The sub-module's structure is not covered by the fast path."""


def _d(t: Tensor) -> Tensor:
    return t.detach().to(device="cpu", dtype=_F64)


def _rows(per_row: int) -> int:
    """Rows per chunk: about CHUNK_ELEMENTS floats per thread (up to 4 threads)."""
    return max(1, CHUNK_ELEMENTS * min(torch.get_num_threads(), 4) // per_row)


def _resample(rn: ResampleNorm) -> Tensor:
    """Matrix M (in, out): x @ M is what ResampleNorm feeds its LayerNorm."""
    m = torch.eye(rn.input_size, dtype=_F64)
    if rn.input_size != rn.output_size:
        m = F.interpolate(m.unsqueeze(1), rn.output_size, mode="linear", align_corners=True)[:, 0]
    return m * (torch.sigmoid(_d(rn.mask)) * 2.0) if rn.trainable_add else m


def _affine(norm: nn.LayerNorm) -> tuple[Tensor, Tensor]:
    ones = torch.ones(norm.normalized_shape, dtype=_F64)
    weight = ones if norm.weight is None else _d(norm.weight)
    return weight, ones * 0 if norm.bias is None else _d(norm.bias)


def _check_grn(grn: nn.Module, context: bool, resample: bool) -> GatedResidualNetwork:
    an = getattr(getattr(grn, "gate_norm", None), "add_norm", None)
    ok = type(grn) is GatedResidualNetwork and not grn.residual and type(an) is AddNorm
    ok = ok and not an.trainable_add and not hasattr(an, "resample") and grn.elu.alpha == 1.0
    ok = ok and (grn.context_size is not None) == context
    ok = ok and hasattr(grn, "resample_norm") == resample == (grn.input_size != grn.output_size)
    if not ok:
        raise _Unsupported(f"GatedResidualNetwork layout: {grn}")
    return grn


def _tail(grn: GatedResidualNetwork) -> tuple[Tensor, Tensor]:
    """fc2 then the GLU's fc, no non-linearity between: one Linear (weight, bias)."""
    fc2, fcg = grn.fc2, grn.gate_norm.glu.fc
    return _d(fcg.weight) @ _d(fc2.weight), _d(fcg.weight) @ _d(fc2.bias) + _d(fcg.bias)


def _context(context: Tensor, weight: Tensor, lead: torch.Size) -> Tensor:
    """A GRN's context term (rows, hidden); a context constant over time projected once."""
    if context.dim() > 2 and all(st == 0 for st in context.stride()[1:-1]):
        base = F.linear(context[(slice(None),) + (0,) * (context.dim() - 2)], weight)
        return base[:, None].expand(lead[0], math.prod(lead[1:]), -1).reshape(-1, weight.shape[0])
    return F.linear(context.reshape(math.prod(lead), -1), weight)


def _columns(tensors: list[Tensor]) -> Tensor:
    """torch.cat(tensors, -1) of (..., 1) tensors; one strided view (copied faster) when
    they are equally spaced columns of one tensor, as the TFT's real inputs are."""
    first, size, ptrs = tensors[0], tensors[0].element_size(), [t.data_ptr() for t in tensors]
    step = (ptrs[-1] - ptrs[0]) // max(1, len(ptrs) - 1) // size
    alike = {(t.untyped_storage().data_ptr(), t.shape, t.stride()) for t in tensors}
    spaced = ptrs == [ptrs[0] + i * step * size for i in range(len(ptrs))]
    if step > 0 and spaced and len(alike) == 1 and first.shape[-1] == 1:
        return first.as_strided((*first.shape[:-1], len(tensors)), (*first.stride()[:-1], step))
    return torch.cat(tensors, -1)


def _column_norm(x: Tensor, weight: Tensor, bias: Tensor, eps: float) -> Tensor:
    """LayerNorm over dim 0, in place: (x - mean) / sqrt(var + eps) * weight + bias."""
    x = x.sub_(x.mean(0))
    return x.mul_(x.square().mean(0).add_(eps).rsqrt_()).mul_(weight).add_(bias)


class _Fast:
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


class _FastVSN(_Fast):
    """VariableSelectionNetwork.forward with all prescaled real variables batched."""

    def prepare(self) -> None:
        vsn, grns = self.module, self.module.single_variable_grns
        names = list(vsn.input_sizes)
        self.group = self._batchable(vsn, names)
        self.others = [n for n in names if n not in self.group]
        self.gidx = torch.tensor([names.index(n) for n in self.group], device=self.device)
        self.oidx = [names.index(n) for n in self.others]
        rn = {n for n in self.others if type(grns[n]) is ResampleNorm}
        self.omaps = [self._to(_resample(grns[n])) if n in rn else None for n in self.others]
        self._prepare_weights(vsn, names)
        per_var = [self._prepare_var(vsn.prescalers[n], grns[n]) for n in self.group]
        self.stacked = tuple(self._to(torch.stack(c)) for c in zip(*per_var, strict=True))
        self.hg, self.H = grns[self.group[0]].hidden_size, vsn.hidden_size
        self.eps = grns[self.group[0]].gate_norm.add_norm.norm.eps

    @staticmethod
    def _batchable(vsn: VariableSelectionNetwork, names: list[str]) -> list[str]:
        """Real variables (prescaler Linear(1, k), then a GRN) sized like the first one."""
        pre, grns = vsn.prescalers, vsn.single_variable_grns

        def sizes(n: str) -> tuple[Any, ...]:
            g = grns[n]
            return g.input_size, g.hidden_size, g.gate_norm.add_norm.norm.eps

        reals = [n for n in names if type(pre[n] if n in pre else None) is nn.Linear]
        reals = [n for n in reals if pre[n].in_features == 1]
        reals = [n for n in reals if type(grns[n]) is GatedResidualNetwork]
        group = [n for n in reals if sizes(n) == sizes(reals[0])]
        if len(names) < 2 or not group:
            raise _Unsupported("no real variables to batch")
        return group

    def _prepare_weights(self, vsn: VariableSelectionNetwork, names: list[str]) -> None:
        """Flattened GRN: [fc1 | residual resample] of the concatenated inputs with the
        prescalers folded in: z = k0 + kg @ scalars + sum(ko @ embedding), transposed."""
        fg = _check_grn(vsn.flattened_grn, vsn.context_size is not None, True)
        wf = torch.cat([_d(fg.fc1.weight).T, _resample(fg.resample_norm)], 1)
        blocks = dict(zip(names, wf.split(list(vsn.input_sizes.values())), strict=True))
        k0 = torch.cat([_d(fg.fc1.bias), torch.zeros(len(names), dtype=_F64)])
        for n in self.group:
            k0 = k0 + _d(vsn.prescalers[n].bias) @ blocks[n]
        kg = [_d(vsn.prescalers[n].weight)[:, 0] @ blocks[n] for n in self.group]
        self.k0, self.kg = self._to(k0[:, None]), self._to(torch.stack(kg, 1))
        self.ko = [self._to(blocks[n].T) for n in self.others]
        self.wctx = None if fg.context_size is None else fg.context.weight.detach()
        wt, bt = _tail(fg)
        self.f_wt, self.f_bt, self.hf = self._to(wt), self._to(bt[:, None]), fg.hidden_size
        norms = (fg.resample_norm.norm, fg.gate_norm.add_norm.norm)
        self.f_norms = [(*(self._to(t[:, None]) for t in _affine(n)), n.eps) for n in norms]

    @staticmethod
    def _prepare_var(pre: nn.Linear, grn: nn.Module) -> tuple[Tensor, ...]:
        """One scalar variable: fc1 as (u, c); [fc2+GLU fc | bias]; residual LayerNorm
        terms (a*gamma, b*gamma, beta) and (s0, p, m + eps); gate LayerNorm affine."""
        _check_grn(grn, False, True)
        wp, bp, w1 = _d(pre.weight)[:, 0], _d(pre.bias), _d(grn.fc1.weight)
        uc = torch.stack([w1 @ wp, w1 @ bp + _d(grn.fc1.bias)], 1)
        rn = grn.resample_norm
        a, b = wp @ _resample(rn), bp @ _resample(rn)
        a, b = a - a.mean(), b - b.mean()
        p, q, r = (a * a).mean(), (a * b).mean(), (b * b).mean()
        s0 = q / p if p > 0 else p * 0
        qp = torch.stack([s0, p, (r - q * s0).clamp_min(0) + rn.norm.eps])
        (gamma, beta), (wt, bt) = _affine(rn.norm), _tail(grn)
        go, bo = _affine(grn.gate_norm.add_norm.norm)
        res = torch.stack([a * gamma, b * gamma, beta], 1)
        return uc, torch.cat([wt, bt[:, None]], 1), res, qp, go.unsqueeze(-1), bo

    def example(self, gen: torch.Generator) -> tuple[Any, ...]:
        """Self-check inputs: 3 samples x 4 steps, the first real equal in all samples."""
        vsn = self.module
        x = {
            n: self._rand(gen, 3, 4, 1 if n in vsn.prescalers else s)
            for n, s in vsn.input_sizes.items()
        }
        x[self.group[0]] = self._rand(gen, 1, 4, 1).expand(3, 4, 1)
        if vsn.context_size is None:
            return x, None
        return x, self._rand(gen, 3, 1, vsn.context_size).expand(3, 4, -1)

    def run(self, x: dict[str, Tensor], context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The library's (outputs (..., hidden), sparse weights (..., 1, variables))."""
        lead = x[self.group[0]].shape[:-1]
        B, T, N, H = lead[0], math.prod(lead[1:]), math.prod(lead), self.H
        S = _columns([x[n] for n in self.group]).reshape(N, -1)
        S3 = S.view(B, T, -1)
        same = (S3.amax(0) == S3.amin(0)).all(0).tolist() if B > 1 else [False] * S.shape[1]
        fixed, vary = [i for i, c in enumerate(same) if c], [i for i, c in enumerate(same) if not c]
        pre = self.module.prescalers
        embs = [(pre[n](x[n]) if n in pre else x[n]).reshape(N, -1) for n in self.others]
        proj = None if context is None else _context(context, self.wctx, lead)
        out, wout = S.new_empty(N, H), S.new_empty(N, len(self.module.input_sizes))
        params, vidx = self._subset(vary), torch.tensor(vary, dtype=torch.long, device=S.device)
        step = _rows(len(vary) * 3 * H + 64)
        for r0 in range(0, N, step):
            rows = slice(r0, r0 + step)
            e = [t[rows] for t in embs]
            w = self._weights(S[rows], e, None if proj is None else proj[rows])
            wout[rows] = w.T
            self._chunk(torch.index_select(S[rows].T, 0, vidx), w, out[rows], params, vidx)
            self._others(e, w, out[rows])
        if fixed:
            self._add_fixed(S[:T], fixed, wout.view(B, T, -1), out.view(B, T, H))
        return out.view(*lead, H), wout.view(*lead, 1, -1)

    def _subset(self, idx: list[int]) -> tuple[Tensor, ...]:
        return self.stacked if len(idx) == len(self.group) else tuple(p[idx] for p in self.stacked)

    def _weights(self, s: Tensor, embs: list[Tensor], proj: Tensor | None) -> Tensor:
        """Softmax variable weights, transposed (variables, rows): the flattened GRN."""
        z = torch.addmm(self.k0, self.kg, s.T)
        for e, k in zip(embs, self.ko, strict=True):
            z.addmm_(k, e.T)
        pre = z[: self.hf] if proj is None else z[: self.hf] + proj.T
        t = torch.addmm(self.f_bt, self.f_wt, F.elu(pre))
        g = F.glu(t, 0).add_(_column_norm(z[self.hf :], *self.f_norms[0]))
        return _column_norm(g, *self.f_norms[1]).softmax(0)

    def _normalized(self, s: Tensor, params: tuple[Tensor, ...]) -> tuple[Tensor, Tensor]:
        """Per-variable GRN outputs before their gate LayerNorm's affine: centred z
        (V, H, rows) and 1/std (V, rows), from the variables' scalars s (V, rows)."""
        (uc, w, res, qp), V, n, hg = params[:4], s.shape[0], s.shape[1], self.hg
        X = s.new_empty(V, hg + 4, n)  # rows: elu(fc1) (hg), 1, s * rstd, rstd, 1
        F.elu_(torch.mul(s.unsqueeze(1), uc[:, :, :1], out=X[:, :hg]).add_(uc[:, :, 1:]))
        X[:, hg].fill_(1.0)
        X[:, hg + 3].fill_(1.0)
        q = torch.add(s, qp[:, :1], out=X[:, hg + 2])
        q.square_().mul_(qp[:, 1:2]).add_(qp[:, 2:]).rsqrt_()
        torch.mul(s, q, out=X[:, hg + 1])
        z = F.glu(torch.bmm(w, X[:, : hg + 1]), 1).baddbmm_(res, X[:, hg + 1 :])
        z.sub_(z.mean(1, keepdim=True))
        return z, z.square().mean(1).add_(self.eps).rsqrt_()

    def _chunk(
        self, s: Tensor, w: Tensor, out: Tensor, params: tuple[Tensor, ...], vidx: Tensor
    ) -> None:
        """out = weighted sum of the batched variables' outputs, one chunk of rows."""
        if not len(vidx):
            out.zero_()
            return
        z, rstd = self._normalized(s, params)
        wg = torch.index_select(w, 0, self.gidx[vidx])
        z.mul_(params[4]).mul_(rstd.mul_(wg).unsqueeze(1))
        torch.addmm(z.sum(0).T, wg.T, params[5], out=out)

    def _others(self, embs: list[Tensor], w: Tensor, out: Tensor) -> None:
        """Add the weighted outputs of the other variables (e.g. categorical embeddings)."""
        grns = self.module.single_variable_grns
        for name, e, i, rmap in zip(self.others, embs, self.oidx, self.omaps, strict=True):
            if rmap is None:
                y = grns[name](e)
            else:  # ResampleNorm: interpolation and gate as one matrix
                nm = grns[name].norm
                y = F.layer_norm(e @ rmap, nm.normalized_shape, nm.weight, nm.bias, nm.eps)
            out.add_(y * w[i, :, None])

    def _add_fixed(self, s: Tensor, fixed: list[int], w: Tensor, out: Tensor) -> None:
        """Variables equal in every sample: their outputs once per step, then weighted."""
        params = self._subset(fixed)
        idx = torch.tensor(fixed, dtype=torch.long, device=s.device)
        z, rstd = self._normalized(torch.index_select(s.T, 0, idx), params)
        y = z.mul_(params[4]).mul_(rstd.unsqueeze(1)).add_(params[5].unsqueeze(-1))
        out.add_(torch.einsum("btv,vht->bth", w[..., self.gidx[idx]], y))


class _FastGRN(_Fast):
    """GatedResidualNetwork.forward (input size == output size) in chunks of rows."""

    def prepare(self) -> None:
        grn = _check_grn(self.module, self.module.context_size is not None, False)
        wt, bt = _tail(grn)
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
        proj = None if context is None else _context(context, self.wctx, lead)
        out = x.new_empty(xs.shape[0], g.output_size)
        step = _rows(4 * g.output_size)
        for r0 in range(0, xs.shape[0], step):
            rows = slice(r0, r0 + step)
            pre = g.fc1(xs[rows])
            if proj is not None:
                pre.add_(proj[rows])
            z = F.glu(torch.addmm(self.bt, F.elu_(pre), self.wt), -1).add_(rs[rows])
            out[rows] = F.layer_norm(z, nm.normalized_shape, nm.weight, nm.bias, nm.eps)
        return out.view(*lead, -1)


class _FastAttention(_Fast):
    """One-head InterpretableMultiHeadAttention.forward in chunks of samples."""

    def prepare(self) -> None:
        if self.module.n_head != 1 or type(self.module.attention) is not ScaledDotProductAttention:
            raise _Unsupported("attention with more than one head or another scoring")

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
        step = _rows(4 * Tq * Tk)
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


def _agrees(module: nn.Module, fast: _Fast) -> bool:
    """Self-check: the fast forward matches the library's on random inputs (eval mode)."""
    args = fast.example(torch.Generator().manual_seed(0))
    flags = [sub.training for sub in module.modules()]
    module.eval()
    try:
        with torch.inference_mode():
            want, got = type(module).forward(module, *args), fast.run(*args)
    finally:
        for sub, flag in zip(module.modules(), flags, strict=True):
            sub.training = flag
    pairs = zip(*((got, want) if isinstance(got, tuple) else ((got,), (want,))), strict=True)
    return all(torch.allclose(g, w, rtol=1e-4, atol=1e-5) for g, w in pairs)


def _swap(module: nn.Module | None, kind: type, fast_type: type[_Fast]) -> None:
    if type(module) is not kind or "forward" in vars(module):
        return  # absent, another class, or already accelerated
    try:
        fast = fast_type(module)
        agrees = _agrees(module, fast)
    except Exception as err:  # anything unforeseen: keep the library's forward
        logger.info("%s keeps the library forward: %s", kind.__name__, err)
        return
    if agrees:
        module.forward = fast
    else:
        logger.warning("%s: fast forward disagrees, the library's is kept", kind.__name__)


def accelerate(model: TemporalFusionTransformer) -> TemporalFusionTransformer:
    """Swap faster, numerically equivalent forwards into this model instance's slow
    sub-modules (instance-level: other instances and the class are untouched). Returns
    the model. Idempotent; sub-modules the fast path does not cover are left as they are."""
    for name in VSN_NAMES:
        _swap(getattr(model, name, None), VariableSelectionNetwork, _FastVSN)
    for name in GRN_NAMES:
        _swap(getattr(model, name, None), GatedResidualNetwork, _FastGRN)
    _swap(getattr(model, "multihead_attn", None), InterpretableMultiHeadAttention, _FastAttention)
    if isinstance(model, TemporalFusionTransformer) and "get_attention_mask" not in vars(model):
        model.get_attention_mask = types.MethodType(_attention_mask, model)
    return model
