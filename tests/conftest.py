"""Shared fixtures: fixed seeds, non-trivial BatchNorm statistics, and the GPU/TensorRT markers."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

from cbam_deploy.models import list_variants

# Every registered variant: a variant added to the registry is tested without editing a test.
VARIANTS = list_variants()
REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples" / "user_models"

# Under pytest-xdist two workers share the 2 cores: one thread each, or they oversubscribe.
_THREADS = 1 if os.environ.get("PYTEST_XDIST_WORKER") else 2
torch.set_num_threads(_THREADS)


def randomize_batchnorm(model: nn.Module, seed: int = 0, gamma: tuple[float, float] = (0.5, 1.5)) -> nn.Module:
    """Give every BatchNorm non-trivial statistics and affine parameters (seeded), so folding and
    parity are tested on something other than the identity. ``gamma`` bounds the BN weights."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=gen) - 0.5)
                m.running_var.copy_(torch.rand(n, generator=gen) * 1.5 + 0.5)
                m.weight.copy_(torch.rand(n, generator=gen) * (gamma[1] - gamma[0]) + gamma[0])
                m.bias.copy_((torch.rand(n, generator=gen) - 0.5) * 0.4)
                m.num_batches_tracked.fill_(100)
    return model


@pytest.fixture(autouse=True)
def _fixed_seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True, scope="session")
def _openvino_cache_in_tmp(tmp_path_factory):
    """Compiled OpenVINO models of the suite go to a temporary folder, not the user's ~/.cache."""
    if "CBAM_DEPLOY_OPENVINO_CACHE" not in os.environ:
        os.environ["CBAM_DEPLOY_OPENVINO_CACHE"] = str(tmp_path_factory.mktemp("openvino-cache"))


def _has_gpu() -> bool:
    # The CUDA runtime, not torch.cuda: the GPU image installs torch's CPU build.
    from cbam_deploy.backends.cuda_runtime import probe

    return bool(probe().gpus)


def _has_tensorrt() -> bool:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False
    return True


def pytest_collection_modifyitems(config, items):
    gpu_skip = pytest.mark.skip(reason="needs an NVIDIA GPU (the CUDA runtime sees none); run `pytest -m gpu` on a machine with an NVIDIA GPU and TensorRT")
    trt_skip = pytest.mark.skip(reason="needs TensorRT (not importable); run `pytest -m gpu` on a machine with an NVIDIA GPU and TensorRT")
    for item in items:
        # get_closest_marker, not item.keywords: keywords also hold path parts (tests/backends/tensorrt).
        if item.get_closest_marker("gpu") and not _has_gpu():
            item.add_marker(gpu_skip)
        if item.get_closest_marker("tensorrt") and not _has_tensorrt():
            item.add_marker(trt_skip)


# One export per (host, variant) for the whole session: the dynamo exporter has ~10 s of fixed cost,
# so the export, precision and runner tests share these instead of exporting again.
EXPORT_SHAPES = {"cbam": (1, 64, 20, 20), "resnet18": (1, 3, 64, 64), "resnet50": (1, 3, 96, 96)}


@dataclass
class ExportedHost:
    model: nn.Module  # the eager model (randomised BatchNorm statistics), eval mode
    checkpoint: Path
    onnx_path: Path
    report: dict
    shape: tuple


@pytest.fixture(scope="session")
def exported_host(tmp_path_factory):
    from cbam_deploy import create_model
    from cbam_deploy.api.export import ExportOptions, export_source
    from cbam_deploy.api.export import BuiltinSource

    cache: dict[tuple[str, str], ExportedHost] = {}

    def get(arch: str, variant: str) -> ExportedHost:
        if (arch, variant) not in cache:
            root = tmp_path_factory.mktemp(f"{arch}_{variant}")
            # Trained-like BN weights (< 1): with gammas up to 1.5, a random `parallel` ResNet-50
            # (x * (1 + Mc + Ms) per block) reaches outputs of 1e5 and float32 cannot resolve it to
            # 1e-4 at all (folding's own float32 rounding moves it 1e-4). Folding exactness is
            # tested in float64 in tests/fold.
            model = randomize_batchnorm(create_model(arch, variant, channels=64), seed=7, gamma=(0.2, 0.6)).eval()
            ckpt = root / "ckpt.pt"
            torch.save({"state_dict": model.state_dict()}, ckpt)
            shape = EXPORT_SHAPES[arch]
            # Through the API, as a training script would: the built-in host with the user's checkpoint.
            source = BuiltinSource(arch=arch, variant=variant, weights=str(ckpt), input_shape=shape)
            report = export_source(source, ExportOptions(out=root / "models")).to_dict()
            assert report["passed"]
            cache[arch, variant] = ExportedHost(model, ckpt, Path(report["onnx"]), report, shape)
        return cache[arch, variant]

    return get
