"""OpenVINO backend (the ``openvino`` extra): a loader that reads the ONNX and compiles it for the CPU
with the inference precision, threads and model cache set explicitly, and a runner over it."""

from .loader import (CACHE_ENV, EXTRA_HINT, HINTS, CompiledModelFromOnnx, bf16_problem, cpu_capabilities,
                     default_cache_dir, import_openvino, openvino_problem)
from .runner import OpenVinoRunner

__all__ = ["CACHE_ENV", "EXTRA_HINT", "HINTS", "CompiledModelFromOnnx", "OpenVinoRunner", "bf16_problem",
           "cpu_capabilities", "default_cache_dir", "import_openvino", "openvino_problem"]
