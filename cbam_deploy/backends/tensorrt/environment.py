"""Is TensorRT usable here? The GPU is found through the CUDA runtime (``libcudart`` via ctypes),
never through torch: the GPU image installs torch's CPU build. Lazy imports; a missing piece is
one line saying what and how to get it."""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import MissingDependencyError

HOW_TO_GET = ("run it on a machine with an NVIDIA GPU, inside the GPU image (docker/Dockerfile.gpu, "
              "based on nvcr.io/nvidia/tensorrt) with cbam-deploy installed")


@dataclass(frozen=True)
class TensorRTEnvironment:
    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    driver_version: str = ""
    cuda_runtime_version: str = ""


def import_tensorrt():
    """The ``tensorrt`` module, or ``MissingDependencyError`` naming the package."""
    try:
        import tensorrt
    except ImportError:
        raise MissingDependencyError(f"TensorRT is not installed (the 'tensorrt' Python package); {HOW_TO_GET}") from None
    return tensorrt


def import_polygraphy_trt():
    """Polygraphy's TensorRT backend (loaders and ``TrtRunner``), or one line naming the package."""
    import_tensorrt()
    try:
        from polygraphy.backend import trt as polygraphy_trt
    except ImportError:
        raise MissingDependencyError("Polygraphy is not installed: pip install 'cbam-deploy[gpu]' "
                                     "(the GPU image pins it)") from None
    return polygraphy_trt


def tensorrt_problem() -> str | None:
    """Why TensorRT cannot run here (one line), or None. Checks the GPU first: that is the usual gap."""
    from ..cuda_runtime import probe

    cuda = probe()
    if not cuda.gpus:
        return f"TensorRT needs an NVIDIA GPU: {cuda.problem}"
    try:
        import_polygraphy_trt()
    except MissingDependencyError as exc:
        return str(exc).split("; ")[0]  # the what, without the how (detect() adds it once)
    return None


def detect() -> TensorRTEnvironment:
    """TensorRT's version and GPU 0's name and compute capability, or ``MissingDependencyError``."""
    from ..cuda_runtime import probe

    problem = tensorrt_problem()
    if problem:
        raise MissingDependencyError(f"{problem}; {HOW_TO_GET}")
    trt = import_tensorrt()
    cuda = probe()
    gpu = cuda.gpus[0]
    return TensorRTEnvironment(trt.__version__, gpu.name, gpu.compute_capability, cuda.driver_version,
                               cuda.runtime_version)
