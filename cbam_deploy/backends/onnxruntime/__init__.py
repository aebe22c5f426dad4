"""ONNX Runtime backend: a session loader (with its optimized-model cache and quiet provider
probing) and a runner that takes what the loader makes."""

from .loader import PROVIDER_ALIASES, SessionFromOnnx, create_session, provider_problem
from .runner import OnnxRuntimeRunner

__all__ = ["PROVIDER_ALIASES", "OnnxRuntimeRunner", "SessionFromOnnx", "create_session", "provider_problem"]
