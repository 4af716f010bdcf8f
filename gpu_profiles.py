"""GPU auto-detection and per-GPU tuning profiles (the project's architecture
specification, section 5 "GPU Configuration"; the README's GPU section says how they are
used).

Usage::

    from gpu_profiles import setup_gpu

    gpu = setup_gpu()
    batch_size = gpu.get_batch_size("train")

Run ``python gpu_profiles.py`` to print the detected configuration.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from dataclasses import dataclass
from typing import Any, Literal

import torch

logger = logging.getLogger(__name__)

Capability = tuple[int, int]
BatchMode = Literal["train", "inference"]


@dataclass(frozen=True)
class GPUProfile:
    """Tuning values for one GPU class.

    ``name_patterns`` are case-insensitive regexes tried against the device name;
    ``capability_range`` is an inclusive (min, max) compute-capability range used
    when no name matches. ``memory_fraction`` of ``None`` means "do not cap memory".
    ``allow_tf32`` sets cuDNN's TF32 flag; matmul TF32 follows ``matmul_precision``.
    """

    name: str
    description: str
    batch_size_train: int
    batch_size_inference: int
    num_workers: int
    matmul_precision: Literal["medium", "high", "highest"]
    cudnn_benchmark: bool
    cudnn_deterministic: bool
    memory_fraction: float | None
    allow_tf32: bool = False
    name_patterns: tuple[str, ...] = ()
    capability_range: tuple[Capability, Capability] | None = None

    def matches_name(self, device_name: str) -> bool:
        """True if any name pattern occurs in ``device_name`` (case-insensitive)."""
        return any(re.search(p, device_name, re.IGNORECASE) for p in self.name_patterns)

    def matches_capability(self, capability: Capability) -> bool:
        """True if ``capability`` lies inside this profile's inclusive range."""
        if self.capability_range is None:
            return False
        low, high = self.capability_range
        return low <= tuple(capability) <= high


def _model(number: str) -> str:
    """Regex for a model number as a whole token: 'H100' matches 'H100-SXM', not 'GH100'."""
    return rf"\b{number}(?!\d)"


# fmt: off
RTX_4090 = GPUProfile(
    name="RTX 4090",
    description="Consumer/Workstation GPU - Ada Lovelace architecture",
    batch_size_train=32, batch_size_inference=128, num_workers=8,
    matmul_precision="medium", cudnn_benchmark=True, cudnn_deterministic=False,
    memory_fraction=0.85, allow_tf32=True,
    name_patterns=(_model("4090"),), capability_range=((8, 9), (8, 9)),
)
RTX_3090 = GPUProfile(
    name="RTX 3090",
    description="Consumer/Workstation GPU - Ampere architecture",
    batch_size_train=32, batch_size_inference=128, num_workers=8,
    matmul_precision="medium", cudnn_benchmark=True, cudnn_deterministic=False,
    memory_fraction=0.85, allow_tf32=True,
    name_patterns=(_model("3090"),), capability_range=((8, 6), (8, 7)),
)
TESLA_V100 = GPUProfile(
    name="Tesla V100",
    description="Data Center GPU - Volta architecture",
    batch_size_train=64, batch_size_inference=256, num_workers=16,
    matmul_precision="high", cudnn_benchmark=True, cudnn_deterministic=True,
    memory_fraction=0.90, allow_tf32=False,  # Volta has no TF32 units
    name_patterns=(_model("V100"),), capability_range=((7, 0), (7, 9)),
)
A100 = GPUProfile(
    name="A100",
    description="Data Center GPU - Ampere architecture with TF32",
    batch_size_train=128, batch_size_inference=512, num_workers=32,
    matmul_precision="high", cudnn_benchmark=True, cudnn_deterministic=True,
    memory_fraction=0.90, allow_tf32=True,
    name_patterns=(_model("A100"),), capability_range=((8, 0), (8, 0)),
)
H100 = GPUProfile(
    name="H100",
    description="Next-gen Data Center GPU - Hopper architecture with FP8",
    batch_size_train=256, batch_size_inference=1024, num_workers=32,
    matmul_precision="high", cudnn_benchmark=True, cudnn_deterministic=True,
    memory_fraction=0.90, allow_tf32=True,
    name_patterns=(_model("H100"),), capability_range=((9, 0), (9, 9)),
)
H200 = GPUProfile(
    name="H200",
    description="Next-gen Data Center GPU - Hopper architecture with FP8, 141GB HBM3e",
    batch_size_train=512, batch_size_inference=2048, num_workers=32,
    matmul_precision="high", cudnn_benchmark=True, cudnn_deterministic=True,
    memory_fraction=0.90, allow_tf32=True,
    name_patterns=(_model("H200"),), capability_range=None,  # same SM as H100: name only
)
GENERIC = GPUProfile(
    name="Generic",
    description="Unknown GPU - conservative fallback settings",
    batch_size_train=16, batch_size_inference=64, num_workers=4,
    matmul_precision="highest", cudnn_benchmark=True, cudnn_deterministic=True,
    memory_fraction=0.85, allow_tf32=False,
)
# fmt: on

#: Known profiles, in matching order.
PROFILES: tuple[GPUProfile, ...] = (H200, H100, A100, TESLA_V100, RTX_4090, RTX_3090)

CPU_BATCH_TRAIN = 32
CPU_BATCH_INFERENCE = 64  # the spec's CPU fallback for TFTInference
CPU_MAX_WORKERS = 4


def cpu_profile() -> GPUProfile:
    """Profile used without CUDA: small batches, half the cores (1..4) as workers."""
    workers = min(CPU_MAX_WORKERS, max(1, (os.cpu_count() or 1) // 2))
    return GPUProfile(
        name="CPU",
        description="CPU only - no CUDA device available",
        batch_size_train=CPU_BATCH_TRAIN,
        batch_size_inference=CPU_BATCH_INFERENCE,
        num_workers=workers,
        matmul_precision="highest",
        cudnn_benchmark=False,
        cudnn_deterministic=False,
        memory_fraction=None,
    )


def match_profile(device_name: str, capability: Capability) -> GPUProfile:
    """Pick the profile for a CUDA device.

    Rule, first hit wins:
    1. Name: a model number found as a whole token, case-insensitive
       (H200, H100, A100, V100, 4090, 3090), so "H200" never matches H100.
    2. Compute capability: SM 9.x -> H100, 8.0 -> A100, 8.6-8.7 -> RTX 3090,
       8.9 -> RTX 4090, 7.x -> Tesla V100.
    3. Anything else (e.g. SM 6.1 Pascal, or unknown newer SMs) -> Generic.
    """
    for profile in PROFILES:
        if profile.matches_name(device_name):
            return profile
    for profile in PROFILES:
        if profile.matches_capability(capability):
            return profile
    return GENERIC


@dataclass(frozen=True)
class GPUConfig:
    """Result of detection: the chosen profile and the device it applies to."""

    profile: GPUProfile
    device: torch.device
    device_name: str | None = None
    capability: Capability | None = None

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    def get_batch_size(self, mode: BatchMode = "train") -> int:
        """Batch size for ``'train'`` or ``'inference'``; ValueError otherwise."""
        if mode == "train":
            return self.profile.batch_size_train
        if mode == "inference":
            return self.profile.batch_size_inference
        raise ValueError(f"unknown batch size mode {mode!r}; expected 'train' or 'inference'")

    def get_num_workers(self) -> int:
        """DataLoader worker count for this profile."""
        return self.profile.num_workers

    def describe(self) -> list[str]:
        """Human-readable summary lines, as in the spec's example output."""
        p = self.profile
        if not self.is_cuda:
            return [
                f"[GPU] No CUDA device detected - using CPU profile "
                f"(train={p.batch_size_train}, inference={p.batch_size_inference}, "
                f"workers={p.num_workers})",
                f"[GPU] Auto-configured batch size: {p.batch_size_train}",
            ]
        major, minor = self.capability or (0, 0)
        tensor_cores = "Enabled" if p.matmul_precision != "highest" else "Disabled for FP32"
        lines = [
            f"[GPU] Detected: {self.device_name}",
            f"[GPU] Compute Capability: SM {major}.{minor}",
            f"[GPU] Profile: {p.name}",
            f"[GPU] {p.description}",
            f"[GPU] Tensor Cores: {tensor_cores} (precision={p.matmul_precision})",
            f"[GPU] cuDNN: benchmark={p.cudnn_benchmark}, deterministic={p.cudnn_deterministic}",
        ]
        if p.memory_fraction is not None:
            lines.append(f"[GPU] Memory: {round(p.memory_fraction * 100)}% reserved")
        lines.append(f"[GPU] Auto-configured batch size: {p.batch_size_train}")
        return lines


def detect_gpu(device_index: int = 0, cuda: Any = torch.cuda) -> GPUConfig:
    """Detect the device and choose a profile; changes no settings."""
    if not cuda.is_available():
        return GPUConfig(profile=cpu_profile(), device=torch.device("cpu"))
    name = cuda.get_device_name(device_index)
    major, minor = cuda.get_device_capability(device_index)
    capability = (int(major), int(minor))
    return GPUConfig(
        profile=match_profile(name, capability),
        device=torch.device("cuda", device_index),
        device_name=name,
        capability=capability,
    )


def apply_profile(profile: GPUProfile, device_index: int = 0, backend: Any = torch) -> None:
    """Apply a GPU profile's global settings through ``backend`` (torch or a fake)."""
    backend.set_float32_matmul_precision(profile.matmul_precision)
    backend.backends.cudnn.benchmark = profile.cudnn_benchmark
    backend.backends.cudnn.deterministic = profile.cudnn_deterministic
    backend.backends.cudnn.allow_tf32 = profile.allow_tf32
    if profile.memory_fraction is not None:
        backend.cuda.set_per_process_memory_fraction(profile.memory_fraction, device_index)


def setup_gpu(device_index: int = 0) -> GPUConfig:
    """Detect the GPU, apply its profile and log the summary.

    Without CUDA, returns the CPU profile and changes no global torch settings.
    """
    config = detect_gpu(device_index)
    if config.is_cuda:
        apply_profile(config.profile, device_index)
    for line in config.describe():
        logger.info(line)
    return config


def main() -> int:
    """CLI: detect and configure the GPU, then print the summary to stdout."""
    config = setup_gpu()
    sys.stdout.write("\n".join(config.describe()) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
