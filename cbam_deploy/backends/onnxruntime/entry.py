"""The ONNX Runtime backends' table entries, one per execution provider (light: onnxruntime is
imported only when a runner is opened or a provider probed)."""

from __future__ import annotations

from typing import Any, Callable

from ...options import ORT_PROVIDERS
from ..base import Backend, Runner, onnx_source

_OPTIONS = ("threads", "spinning", "optimization_level", "optimized_cache", "allow_nonfinite")
_NEEDS = {"cpu": "onnxruntime (or onnxruntime-gpu)",
          "cuda": "onnxruntime-gpu, an NVIDIA GPU, CUDA 13 (cuBLAS, cuRAND, runtime) and cuDNN 9",
          "tensorrt": "onnxruntime-gpu, an NVIDIA GPU, CUDA 13, cuDNN 9 and TensorRT 10 libraries"}


def _opener(provider: str) -> Callable[..., Runner]:
    def open_(model: Any, **options: Any) -> Runner:
        from .runner import OnnxRuntimeRunner

        return OnnxRuntimeRunner(onnx_source(model), provider=provider, **options)

    return open_


def _problem(provider: str) -> Callable[[], str | None]:
    def problem() -> str | None:
        from ...errors import MissingDependencyError
        from .loader import provider_problem

        try:
            return provider_problem(provider)
        except MissingDependencyError as exc:
            return str(exc)

    return problem


ENTRIES = tuple(Backend(f"onnxruntime-{p}", "onnx", _NEEDS[p], _OPTIONS, _opener(p), _problem(p))
                for p in ORT_PROVIDERS)
