"""Is TensorRT usable here? Lazy imports; a missing piece is one line saying what and how to get it."""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import MissingDependencyError

HOW_TO_GET = ("run cbam-build on a machine with an NVIDIA GPU, inside NVIDIA's TensorRT container "
              "(nvcr.io/nvidia/tensorrt) with cbam-deploy installed")


@dataclass(frozen=True)
class TensorRTEnvironment:
    tensorrt_version: str
    gpu_name: str
    compute_capability: str


def import_tensorrt():
    try:
        import tensorrt
    except ImportError:
        raise MissingDependencyError(f"TensorRT is not installed (the 'tensorrt' Python package); {HOW_TO_GET}") from None
    return tensorrt


def detect() -> TensorRTEnvironment:
    """TensorRT's version and the GPU's name and compute capability, or ``MissingDependencyError``."""
    import torch

    if not torch.cuda.is_available():
        raise MissingDependencyError(f"TensorRT needs an NVIDIA GPU and none is visible (torch.cuda.is_available() "
                                     f"is False); {HOW_TO_GET}")
    trt = import_tensorrt()
    major, minor = torch.cuda.get_device_capability(0)
    return TensorRTEnvironment(trt.__version__, torch.cuda.get_device_name(0), f"{major}.{minor}")
