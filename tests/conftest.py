"""Shared fixtures: fixed seeds, non-trivial BatchNorm statistics, and the GPU/TensorRT markers."""

from __future__ import annotations

import os

import pytest
import torch
from torch import nn

VARIANTS = ["original", "dual_bn", "deep_spatial", "parallel"]

os.environ.setdefault("OMP_NUM_THREADS", "2")
torch.set_num_threads(2)


def randomize_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm non-trivial statistics and affine parameters (seeded), so folding and
    parity are tested on something other than the identity."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=gen) - 0.5)
                m.running_var.copy_(torch.rand(n, generator=gen) * 1.5 + 0.5)
                m.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                m.bias.copy_((torch.rand(n, generator=gen) - 0.5) * 0.4)
                m.num_batches_tracked.fill_(100)
    return model


@pytest.fixture(autouse=True)
def _fixed_seed():
    torch.manual_seed(0)


def _has_gpu() -> bool:
    return torch.cuda.is_available()


def _has_tensorrt() -> bool:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False
    return True


def pytest_collection_modifyitems(config, items):
    gpu_skip = pytest.mark.skip(reason="needs an NVIDIA GPU (none visible to torch.cuda); run `pytest -m gpu` in the GPU image")
    trt_skip = pytest.mark.skip(reason="needs TensorRT (not importable); run `pytest -m gpu` in the GPU image")
    for item in items:
        # get_closest_marker, not item.keywords: keywords also hold path parts (tests/backends/tensorrt).
        if item.get_closest_marker("gpu") and not _has_gpu():
            item.add_marker(gpu_skip)
        if item.get_closest_marker("tensorrt") and not _has_tensorrt():
            item.add_marker(trt_skip)
