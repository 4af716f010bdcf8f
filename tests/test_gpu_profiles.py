"""Tests for gpu_profiles: matching, CPU path and applying settings on a faked GPU."""

from __future__ import annotations

import logging
import os
from types import SimpleNamespace

import pytest
import torch

import gpu_profiles
from gpu_profiles import (
    A100,
    GENERIC,
    H100,
    H200,
    PROFILES,
    RTX_3090,
    RTX_4090,
    TESLA_V100,
    GPUConfig,
    apply_profile,
    match_profile,
    setup_gpu,
)


@pytest.mark.parametrize(
    ("name", "capability", "expected"),
    [
        ("NVIDIA GeForce RTX 4090", (8, 9), RTX_4090),
        ("NVIDIA GeForce RTX 3090", (8, 6), RTX_3090),
        ("NVIDIA GeForce RTX 3090 Ti", (8, 6), RTX_3090),
        ("Tesla V100-SXM2-16GB", (7, 0), TESLA_V100),
        ("NVIDIA A100-SXM4-80GB", (8, 0), A100),
        ("NVIDIA H100 80GB HBM3", (9, 0), H100),
        ("NVIDIA H100 PCIe", (9, 0), H100),
        ("NVIDIA H200", (9, 0), H200),
        ("nvidia h200 nvl", (9, 0), H200),
    ],
)
def test_match_by_name(name: str, capability: tuple[int, int], expected) -> None:
    assert match_profile(name, capability) is expected


def test_name_wins_over_capability() -> None:
    # A wrong capability must not override an explicit model name.
    assert match_profile("NVIDIA A100-SXM4-40GB", (9, 0)) is A100
    assert match_profile("NVIDIA H200", (8, 0)) is H200


@pytest.mark.parametrize("name", ["NVIDIA GH100", "NVIDIA A1000", "RTX 40900", "H2000"])
def test_model_number_must_be_whole_token(name: str) -> None:
    assert match_profile(name, (6, 1)) is GENERIC


@pytest.mark.parametrize(
    ("capability", "expected"),
    [
        ((9, 0), H100),
        ((9, 9), H100),
        ((8, 9), RTX_4090),
        ((8, 6), RTX_3090),
        ((8, 7), RTX_3090),
        ((8, 0), A100),
        ((7, 0), TESLA_V100),
        ((7, 5), TESLA_V100),
    ],
)
def test_match_by_capability(capability: tuple[int, int], expected) -> None:
    assert match_profile("Some Future Card", capability) is expected


@pytest.mark.parametrize(
    ("name", "capability"),
    [("Quadro P4000", (6, 1)), ("Tesla K80", (3, 7)), ("Mystery GPU", (8, 5)), ("X", (12, 0))],
)
def test_unknown_cards_fall_back_to_generic(name: str, capability: tuple[int, int]) -> None:
    assert match_profile(name, capability) is GENERIC


def test_profile_values_follow_spec() -> None:
    table = {
        RTX_4090: (32, 128, 8, "medium", False, 0.85),
        RTX_3090: (32, 128, 8, "medium", False, 0.85),
        TESLA_V100: (64, 256, 16, "high", True, 0.90),
        A100: (128, 512, 32, "high", True, 0.90),
        H100: (256, 1024, 32, "high", True, 0.90),
        H200: (512, 2048, 32, "high", True, 0.90),
    }
    for p, expected in table.items():
        actual = (
            p.batch_size_train,
            p.batch_size_inference,
            p.num_workers,
            p.matmul_precision,
            p.cudnn_deterministic,
            p.memory_fraction,
        )
        assert actual == expected, p.name
        assert p.cudnn_benchmark
    assert A100.allow_tf32 and H100.allow_tf32
    assert (GENERIC.batch_size_train, GENERIC.batch_size_inference, GENERIC.num_workers) == (
        16,
        64,
        4,
    )
    assert GENERIC.matmul_precision == "highest"
    assert set(PROFILES) == set(table)


def test_cpu_path_changes_nothing(monkeypatch, caplog) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    before = _torch_settings()
    with caplog.at_level(logging.INFO, logger="gpu_profiles"):
        config = setup_gpu()
    assert _torch_settings() == before
    assert config.device == torch.device("cpu")
    assert config.profile.name == "CPU"
    assert config.get_num_workers() == gpu_profiles.CPU_MAX_WORKERS
    assert config.get_batch_size("train") == gpu_profiles.CPU_BATCH_TRAIN
    assert config.get_batch_size("inference") == gpu_profiles.CPU_BATCH_INFERENCE
    assert config.describe()[0].startswith("[GPU] No CUDA device detected - using CPU profile")
    assert caplog.messages == config.describe()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the real no-CUDA path")
def test_cpu_path_on_this_machine() -> None:
    config = setup_gpu()
    assert not config.is_cuda
    assert 1 <= config.get_num_workers() <= gpu_profiles.CPU_MAX_WORKERS


@pytest.mark.parametrize("mode", ["training", "", "Train", "infer"])
def test_get_batch_size_rejects_bad_mode(mode: str) -> None:
    config = GPUConfig(profile=H100, device=torch.device("cuda", 0))
    with pytest.raises(ValueError, match=repr(mode)):
        config.get_batch_size(mode)


def _torch_settings() -> tuple:
    cudnn = torch.backends.cudnn
    return (
        torch.get_float32_matmul_precision(),
        cudnn.benchmark,
        cudnn.deterministic,
        cudnn.allow_tf32,
    )


@pytest.fixture
def restore_torch_settings():
    """Put torch's global precision and cuDNN flags back after the test."""
    precision, benchmark, deterministic, allow_tf32 = _torch_settings()
    yield
    torch.set_float32_matmul_precision(precision)
    torch.backends.cudnn.benchmark = benchmark
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.allow_tf32 = allow_tf32


@pytest.fixture
def fake_cuda(monkeypatch, restore_torch_settings):
    """Make torch.cuda report one device; return the recorded memory-fraction calls."""
    calls: list[tuple[float, int]] = []

    def fake(name: str, capability: tuple[int, int]) -> list[tuple[float, int]]:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: name)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=0: capability)
        monkeypatch.setattr(
            torch.cuda,
            "set_per_process_memory_fraction",
            lambda fraction, device=None: calls.append((fraction, device)),
        )
        return calls

    return fake


def test_setup_gpu_applies_consumer_profile(fake_cuda) -> None:
    calls = fake_cuda("NVIDIA GeForce RTX 4090", (8, 9))
    torch.set_float32_matmul_precision("highest")
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    config = setup_gpu(1)
    assert config.profile is RTX_4090
    assert config.device == torch.device("cuda", 1)
    assert torch.get_float32_matmul_precision() == "medium"
    assert torch.backends.cudnn.benchmark is True
    assert torch.backends.cudnn.deterministic is False
    assert torch.backends.cudnn.allow_tf32 is True
    assert calls == [(0.85, 1)]
    assert config.get_batch_size("train") == 32
    assert config.get_num_workers() == 8


def test_setup_gpu_applies_datacenter_profile_and_describes_it(fake_cuda) -> None:
    calls = fake_cuda("NVIDIA H100", (9, 0))
    torch.backends.cudnn.deterministic = False
    config = setup_gpu()
    assert torch.get_float32_matmul_precision() == "high"
    assert torch.backends.cudnn.deterministic is True
    assert calls == [(0.90, 0)]
    assert config.describe() == [
        "[GPU] Detected: NVIDIA H100",
        "[GPU] Compute Capability: SM 9.0",
        "[GPU] Profile: H100",
        "[GPU] Next-gen Data Center GPU - Hopper architecture with FP8",
        "[GPU] Tensor Cores: Enabled (precision=high)",
        "[GPU] cuDNN: benchmark=True, deterministic=True",
        "[GPU] Memory: 90% reserved",
        "[GPU] Auto-configured batch size: 256",
    ]


def test_setup_gpu_generic_uses_highest_precision_and_no_tf32(fake_cuda) -> None:
    fake_cuda("Quadro P4000", (6, 1))
    torch.set_float32_matmul_precision("medium")
    torch.backends.cudnn.allow_tf32 = True
    config = setup_gpu()
    assert config.profile is GENERIC
    assert torch.get_float32_matmul_precision() == "highest"
    assert torch.backends.cudnn.allow_tf32 is False
    assert "[GPU] Tensor Cores: Disabled for FP32 (precision=highest)" in config.describe()


def test_apply_profile_with_fake_backend() -> None:
    calls: list[object] = []
    backend = SimpleNamespace(
        set_float32_matmul_precision=lambda p: calls.append(("precision", p)),
        backends=SimpleNamespace(cudnn=SimpleNamespace()),
        cuda=SimpleNamespace(set_per_process_memory_fraction=lambda f, d: calls.append((f, d))),
    )
    apply_profile(TESLA_V100, device_index=2, backend=backend)
    cudnn = backend.backends.cudnn
    assert (cudnn.benchmark, cudnn.deterministic, cudnn.allow_tf32) == (True, True, False)
    assert calls == [("precision", "high"), (0.90, 2)]


def test_main_prints_describe_lines(monkeypatch, capsys) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_profiles.main() == 0
    out = capsys.readouterr().out.splitlines()
    assert out == setup_gpu().describe()
    assert out[0].startswith("[GPU] No CUDA device detected")
