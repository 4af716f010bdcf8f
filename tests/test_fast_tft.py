"""inference.fast_tft: the accelerated forwards match the library's TFT, instance-level.

Outputs are compared where float32 rounding is what it is: in the network's own units
(normalised outputs before the target normaliser's inverse transform, attention and
variable weights), norm-wise, with the daemon's self-check criterion (fast_base.agrees).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from pytorch_forecasting import TemporalFusionTransformer
from pytorch_forecasting.models.temporal_fusion_transformer import sub_modules

from inference import fast_base, fast_tft
from inference.fast_base import FORWARD_TOLERANCE, Fast, agrees, deviation
from inference.fast_vsn import FastVSN
from training import LoadedModel, load_artifact
from training.inputs import build_inputs

LATEST = Path(__file__).resolve().parents[1] / "models" / "latest"
SWAPPED = (*fast_tft.VSN_NAMES, *fast_tft.GRN_NAMES, "multihead_attn")
COMPARED = ("encoder_attention", "decoder_attention", "static_variables")
COMPARED += ("encoder_variables", "decoder_variables")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def loaded() -> LoadedModel:
    return load_artifact(LATEST)


@pytest.fixture(scope="module")
def fast(loaded: LoadedModel) -> TemporalFusionTransformer:
    return fast_tft.accelerate(copy.deepcopy(loaded.model))


def windows(config: dict[str, Any], batch: int, same_time: bool = True) -> dict[str, Any]:
    """Inputs for `batch` 288-step windows: varied levels, a metric constant over the
    window (scale at its floor), a spike, states changing within the first window, a
    known and an unknown server; all windows end at the same step or not."""
    rng = np.random.default_rng(batch)
    levels = rng.uniform(1, 80, (batch, 1, 14))
    metrics = (rng.random((batch, 288, 14)) * levels).astype(np.float32)
    metrics[:, :, 6] = 3.0
    metrics[:, 200, 9] += 500.0
    states = np.full((batch, 288), "healthy", dtype=object)
    states[0, 100:150], states[0, 280:] = "heavy_load", "critical_issue"
    servers = (["155155", "not-a-server"] * batch)[:batch]
    last = np.full(batch, 5_900_000) + (0 if same_time else rng.integers(0, 2000, batch))
    return build_inputs(config, metrics, states, servers, last)


def forward(model: TemporalFusionTransformer, x: dict[str, Any]) -> dict[str, Any]:
    """forward() in inference mode, "prediction" replaced by the network's normalised
    outputs (14 tensors (B, 96, 3): the output layers' own, before the inverse transform)."""
    outputs: list[torch.Tensor] = []

    def keep(_layer: torch.nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        outputs.append(output)

    hooks = [layer.register_forward_hook(keep) for layer in model.output_layer]
    try:
        with torch.inference_mode():
            return {**model(x), "prediction": outputs}
    finally:
        for hook in hooks:
            hook.remove()


def assert_same_output(got: dict[str, Any], want: dict[str, Any]) -> None:
    pairs = list(zip(got["prediction"], want["prediction"], strict=True))
    assert len(pairs) == 14
    named = {f"prediction[{i}]": pair for i, pair in enumerate(pairs)}
    named |= {key: (got[key], want[key]) for key in COMPARED}
    for name, (g, w) in named.items():
        assert agrees(g, w), f"{name}: deviation {deviation(g, w):.2e} > {FORWARD_TOLERANCE}"


def test_deviation_is_norm_wise() -> None:
    """Rounding error is relative to the tensor's magnitude, not to each element: an
    element that cancelled to near 0 keeps it whole, and it agrees; a 0.1 % change does not."""
    want = torch.tensor([20.0, 3.0, 1e-6, -1e-7])
    rounded = want + torch.tensor([1.5e-5, -2e-6, 2e-6, 3e-7])  # 7.5e-7 of the largest
    assert agrees(rounded, want) and deviation(want, want) == 0.0
    assert not agrees(want * 1.001, want) and not agrees(want[:3], want[1:])
    assert not agrees(want + float("nan"), want)
    assert deviation(torch.ones(2), torch.zeros(2)) == float("inf")


def test_fast_forwards_are_swapped_in(fast: TemporalFusionTransformer) -> None:
    for name in SWAPPED:
        assert isinstance(vars(getattr(fast, name)).get("forward"), Fast), name


@pytest.mark.parametrize(("batch", "same_time"), [(1, True), (5, True), (5, False)])
def test_accelerated_matches_library(
    loaded: LoadedModel, fast: TemporalFusionTransformer, batch: int, same_time: bool
) -> None:
    x = windows(loaded.config, batch, same_time)
    assert_same_output(forward(fast, x), forward(loaded.model, x))


def test_closer_to_float64_than_the_library(
    loaded: LoadedModel, fast: TemporalFusionTransformer
) -> None:
    """The fast path reorders float32 arithmetic; it must not lose accuracy."""
    x = windows(loaded.config, 2)
    x64 = {k: [t.double() for t in v] if k == "target_scale" else v for k, v in x.items()}
    x64 = {k: v.double() if k.endswith("_cont") else v for k, v in x64.items()}
    reference = forward(copy.deepcopy(loaded.model).double(), x64)["prediction"]

    def error(model: TemporalFusionTransformer) -> float:
        got = forward(model, x)["prediction"]
        return max(deviation(g, r) for g, r in zip(got, reference, strict=True))

    assert error(fast) <= 1.5 * error(loaded.model)


def test_chunk_boundaries_do_not_change_results(
    loaded: LoadedModel, fast: TemporalFusionTransformer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fast_base, "CHUNK_ELEMENTS", 5000)  # many chunks, ragged last ones
    x = windows(loaded.config, 5, same_time=False)
    assert_same_output(forward(fast, x), forward(loaded.model, x))


def test_attention_masks_equal_and_per_sample(
    loaded: LoadedModel, fast: TemporalFusionTransformer
) -> None:
    decoder = torch.full((3,), 96)
    for encoder in (torch.full((3,), 288), torch.tensor([288, 200, 17])):
        mask = fast.get_attention_mask(encoder, decoder)
        assert torch.equal(mask, loaded.model.get_attention_mask(encoder, decoder))
        assert (mask.stride(0) == 0) == bool((encoder == 288).all())
        k = torch.randn(3, 384, 16, generator=torch.Generator().manual_seed(0))
        attention = fast.multihead_attn
        with torch.inference_mode():
            got = attention(q=k[:, 288:], k=k, v=k, mask=mask)
            want = type(attention).forward(attention, k[:, 288:], k, k, mask)
        for g, w in zip(got, want, strict=True):
            torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-6)


def test_other_instances_and_classes_are_untouched(
    loaded: LoadedModel, fast: TemporalFusionTransformer
) -> None:
    library = loaded.model
    for name in SWAPPED:
        assert "forward" not in vars(getattr(library, name)), name
    assert "get_attention_mask" not in vars(library)
    for cls in (
        sub_modules.VariableSelectionNetwork,
        sub_modules.GatedResidualNetwork,
        sub_modules.InterpretableMultiHeadAttention,
    ):
        assert cls.forward.__module__ == sub_modules.__name__, cls
    assert TemporalFusionTransformer.get_attention_mask.__qualname__.startswith("Temporal")
    assert fast.state_dict().keys() == library.state_dict().keys()


def test_autograd_or_training_uses_the_library_forward(loaded: LoadedModel) -> None:
    model = fast_tft.accelerate(copy.deepcopy(loaded.model))
    x = windows(loaded.config, 2)
    with torch.enable_grad():
        want, got = loaded.model(x)["prediction"], model(x)["prediction"]
    for g, w in zip(got, want, strict=True):
        assert g.requires_grad and torch.equal(g, w)  # the library's own forward ran
    model.train()
    dropped = forward(model, x)["prediction"]  # inference mode, but training: dropout
    model.eval()
    assert not agrees(dropped[0], forward(loaded.model, x)["prediction"][0])


def test_weights_changed_in_place_are_picked_up(loaded: LoadedModel) -> None:
    library, model = copy.deepcopy(loaded.model), fast_tft.accelerate(copy.deepcopy(loaded.model))
    x = windows(loaded.config, 2)
    before = forward(model, x)["prediction"][0]
    with torch.no_grad():
        for m in (library, model):
            m.prescalers["cpu_user_pct"].weight.mul_(3.0)
            m.encoder_variable_selection.flattened_grn.fc1.bias.add_(0.5)
    after = forward(model, x)
    assert not agrees(after["prediction"][0], before)
    assert_same_output(after, forward(library, x))


def test_a_failed_self_check_keeps_the_library_forward(
    loaded: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    def wrong(self: Any, s: torch.Tensor, params: Any) -> tuple[torch.Tensor, torch.Tensor]:
        z, rstd = original(self, s, params)
        return z, rstd * 1.01

    original = FastVSN._normalized
    monkeypatch.setattr(FastVSN, "_normalized", wrong)
    model = fast_tft.accelerate(copy.deepcopy(loaded.model))
    for name in fast_tft.VSN_NAMES:
        assert "forward" not in vars(getattr(model, name)), name
    assert "forward" in vars(model.multihead_attn)
    x = windows(loaded.config, 2)
    assert_same_output(forward(model, x), forward(loaded.model, x))


def test_accelerate_is_idempotent(fast: TemporalFusionTransformer) -> None:
    forwards = [vars(getattr(fast, name))["forward"] for name in SWAPPED]
    assert fast_tft.accelerate(fast) is fast
    assert forwards == [vars(getattr(fast, name))["forward"] for name in SWAPPED]


def test_the_self_check_measures_the_library_in_float64() -> None:
    """A static selection over 67 inputs (window summaries): the library's float32
    ResampleNorm is further from float64 than the fast path, whose swap must not depend on
    the library's own rounding."""
    from tests.conftest import synthetic_fleet
    from training import dataset as ds
    from training import splits
    from training.model import build_model

    prepared = ds.prepare_frame(synthetic_fleet(n_servers=2, days=3.0, seed=1))
    split = splits.build_splits(prepared, ds.dataset_parameters(), 0.2)
    torch.manual_seed(0)
    model = build_model(split.training, recurrence_inputs=("summaries",)).eval()
    vsn = model.static_variable_selection
    assert len(vsn.input_sizes) == 67
    fast = FastVSN(vsn)
    args = fast.example(torch.Generator().manual_seed(0))
    reference = copy.deepcopy(vsn).double()
    with torch.inference_mode():
        truth = type(vsn).forward(reference, {k: v.double() for k, v in args[0].items()})
        library, got = type(vsn).forward(vsn, *args), fast.run(*args)
    for g, lib, t in zip(got, library, truth, strict=True):
        assert deviation(g, t.float()) < min(1e-5, deviation(lib, t.float())), "fast path"
    assert "forward" in vars(fast_tft.accelerate(copy.deepcopy(model)).static_variable_selection)
