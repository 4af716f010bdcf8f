"""The accelerated VariableSelectionNetwork forward (see inference.fast_tft).

A real variable is a scalar s; its prescaler Linear(1, k)
and everything up to the first non-linearity are affine in s: fc1(prescale(s)) =
s*u + c and the ResampleNorm residual (align_corners linear interpolation = a fixed
matrix, times the trainable gate) is s*a + b. With a, b centred, LayerNorm(s*a + b) =
(s*a + b) * rstd(s), var(s) = p*(s + s0)**2 + m (non-negative terms: no cancellation).
So all per-variable GRNs run as one bmm over (variables, features, rows) with stacked
weights (fc2 and the GLU's fc fused into one Linear), the residual as a rank-3 update,
and the GateAddNorm LayerNorm, per-variable affine and softmax-weighted sum in a few
passes. The flattened GRN takes its fc1 and residual from the scalars in one addmm
(prescalers folded in). Variables equal in every sample (time features) are computed
once per step. Rows are processed in cache-sized chunks. A GRN context that is constant
over time (the expanded static context) is projected once per sample, not once per row.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from pytorch_forecasting.models.temporal_fusion_transformer.sub_modules import (
    GatedResidualNetwork,
    ResampleNorm,
    VariableSelectionNetwork,
)
from torch import Tensor, nn

from inference.fast_base import (
    F64,
    Fast,
    Unsupported,
    check_grn,
    chunk_rows,
    context_term,
    f64,
    grn_tail,
    norm_affine,
    resample_matrix,
)


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


class FastVSN(Fast):
    """VariableSelectionNetwork.forward with all prescaled real variables batched."""

    def prepare(self) -> None:
        vsn, grns = self.module, self.module.single_variable_grns
        names = list(vsn.input_sizes)
        self.group = self._batchable(vsn, names)
        self.others = [n for n in names if n not in self.group]
        self.gidx = torch.tensor([names.index(n) for n in self.group], device=self.device)
        self.oidx = [names.index(n) for n in self.others]
        rn = {n for n in self.others if type(grns[n]) is ResampleNorm}
        self.omaps = [self._to(resample_matrix(grns[n])) if n in rn else None for n in self.others]
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
            raise Unsupported("no real variables to batch")
        return group

    def _prepare_weights(self, vsn: VariableSelectionNetwork, names: list[str]) -> None:
        """Flattened GRN: [fc1 | residual resample] of the concatenated inputs with the
        prescalers folded in: z = k0 + kg @ scalars + sum(ko @ embedding), transposed."""
        fg = check_grn(vsn.flattened_grn, vsn.context_size is not None, True)
        wf = torch.cat([f64(fg.fc1.weight).T, resample_matrix(fg.resample_norm)], 1)
        blocks = dict(zip(names, wf.split(list(vsn.input_sizes.values())), strict=True))
        k0 = torch.cat([f64(fg.fc1.bias), torch.zeros(len(names), dtype=F64)])
        for n in self.group:
            k0 = k0 + f64(vsn.prescalers[n].bias) @ blocks[n]
        kg = [f64(vsn.prescalers[n].weight)[:, 0] @ blocks[n] for n in self.group]
        self.k0, self.kg = self._to(k0[:, None]), self._to(torch.stack(kg, 1))
        self.ko = [self._to(blocks[n].T) for n in self.others]
        self.wctx = None if fg.context_size is None else fg.context.weight.detach()
        wt, bt = grn_tail(fg)
        self.f_wt, self.f_bt, self.hf = self._to(wt), self._to(bt[:, None]), fg.hidden_size
        norms = (fg.resample_norm.norm, fg.gate_norm.add_norm.norm)
        self.f_norms = [(*(self._to(t[:, None]) for t in norm_affine(n)), n.eps) for n in norms]

    @staticmethod
    def _prepare_var(pre: nn.Linear, grn: nn.Module) -> tuple[Tensor, ...]:
        """One scalar variable: fc1 as (u, c); [fc2+GLU fc | bias]; residual LayerNorm
        terms (a*gamma, b*gamma, beta) and (s0, p, m + eps); gate LayerNorm affine."""
        check_grn(grn, False, True)
        wp, bp, w1 = f64(pre.weight)[:, 0], f64(pre.bias), f64(grn.fc1.weight)
        uc = torch.stack([w1 @ wp, w1 @ bp + f64(grn.fc1.bias)], 1)
        rn = grn.resample_norm
        a, b = wp @ resample_matrix(rn), bp @ resample_matrix(rn)
        a, b = a - a.mean(), b - b.mean()
        p, q, r = (a * a).mean(), (a * b).mean(), (b * b).mean()
        s0 = q / p if p > 0 else p * 0
        qp = torch.stack([s0, p, (r - q * s0).clamp_min(0) + rn.norm.eps])
        (gamma, beta), (wt, bt) = norm_affine(rn.norm), grn_tail(grn)
        go, bo = norm_affine(grn.gate_norm.add_norm.norm)
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
        proj = None if context is None else context_term(context, self.wctx, lead)
        out, wout = S.new_empty(N, H), S.new_empty(N, len(self.module.input_sizes))
        params, vidx = self._subset(vary), torch.tensor(vary, dtype=torch.long, device=S.device)
        step = chunk_rows(len(vary) * 3 * H + 64)
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
