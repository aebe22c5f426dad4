"""Constants ``cbam-serve --help`` shows, in a module that imports nothing heavy."""

from __future__ import annotations

# backends.DEPLOY_BACKENDS, spelled out here so --help imports nothing (a test keeps them equal).
SERVE_BACKENDS = ("onnxruntime-cpu", "onnxruntime-cuda", "onnxruntime-tensorrt", "tensorrt", "openvino")
DEFAULT_QUEUE_DELAY_US = 500
DEFAULT_EXIT_TIMEOUT_S = 4  # in-flight requests' time to finish on SIGTERM (the whole stop stays under 10 s)
