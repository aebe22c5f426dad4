"""ONNX Runtime backend: a session loader and a runner, with providers checked after creation."""

from .runner import PROVIDER_ALIASES, OnnxRuntimeRunner, create_session

__all__ = ["PROVIDER_ALIASES", "OnnxRuntimeRunner", "create_session"]
