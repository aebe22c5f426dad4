"""ONNX Runtime sessions. ``onnxruntime-gpu`` lists CUDA/TensorRT providers even without a GPU and
then silently runs on CPU: we compare ``session.get_providers()`` with what was asked."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ...errors import MissingDependencyError, UsageError
from ..base import Runner, TensorSpec

PROVIDER_ALIASES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}
_ORT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
              "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(uint8)": np.uint8,
              "tensor(int8)": np.int8, "tensor(bool)": np.bool_}


def _import_ort():
    try:
        import onnxruntime
    except ImportError:
        raise MissingDependencyError("ONNX Runtime is not installed: pip install onnxruntime "
                                     "(or onnxruntime-gpu on Linux x86_64)") from None
    return onnxruntime


def create_session(model: str | Path | bytes, *, provider: str = "cpu", threads: int | None = None,
                   spinning: bool = True, optimization_level: str = "all",
                   optimized_model_path: str | Path | None = None):
    """An ``InferenceSession`` on exactly the provider asked for, or an error saying why not.

    ``spinning=False`` turns intra-op spin-waiting off: needed when several sessions are timed
    side by side in one process, or their idle threads steal each other's cores.
    """
    ort = _import_ort()
    if provider not in PROVIDER_ALIASES:
        raise UsageError(f"unknown provider {provider!r}; valid: {', '.join(PROVIDER_ALIASES)}")
    wanted = PROVIDER_ALIASES[provider]
    available = ort.get_available_providers()
    if wanted not in available:
        raise MissingDependencyError(f"provider {provider!r} ({wanted}) is not in this onnxruntime build "
                                     f"(available: {', '.join(available)}); install onnxruntime-gpu")
    levels = {"disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL, "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
              "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED, "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
    if optimization_level not in levels:
        raise UsageError(f"unknown optimization level {optimization_level!r}; valid: {', '.join(levels)}")
    options = ort.SessionOptions()
    options.graph_optimization_level = levels[optimization_level]
    options.log_severity_level = 3  # errors only: provider-fallback warnings are turned into our own error below
    if threads:
        options.intra_op_num_threads = threads
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if optimized_model_path is not None:
        options.optimized_model_filepath = str(optimized_model_path)
    source = model if isinstance(model, bytes) else str(model)
    try:
        session = ort.InferenceSession(source, sess_options=options, providers=[wanted])
    except Exception as exc:
        raise UsageError(f"ONNX Runtime could not load the model on {provider}: {str(exc).splitlines()[0]}") from exc
    if session.get_providers()[0] != wanted:
        raise MissingDependencyError(
            f"asked for provider {provider!r} ({wanted}) but ONNX Runtime runs on {session.get_providers()[0]} "
            f"(no usable GPU or CUDA/TensorRT libraries here); use the CPU provider, or run on a machine with an "
            "NVIDIA GPU and the CUDA libraries onnxruntime-gpu needs")
    return session


class OnnxRuntimeRunner(Runner):
    """Runs an ONNX model in ONNX Runtime. ``InferenceSession.run`` is thread-safe, so no lock."""

    def __init__(self, model: str | Path | bytes, *, provider: str = "cpu", threads: int | None = None,
                 spinning: bool = True, optimization_level: str = "all", allow_nonfinite: bool = False,
                 optimized_cache: str | Path | None = None) -> None:
        """``optimized_cache``: a file for ONNX Runtime's optimized graph. The first session saves it;
        later ones load it with graph optimization off, which makes session creation faster. The
        cache records the source model's SHA-256, ONNX Runtime's version and the provider, and is
        rebuilt when any differ (the optimized graph is specific to all three)."""
        super().__init__(allow_nonfinite=allow_nonfinite)
        self.model = model
        self.provider = provider
        self.optimized_cache = Path(optimized_cache) if optimized_cache else None
        self.cache_hit: bool | None = None
        self.name = f"onnxruntime[{provider}]"
        self._session_args = dict(provider=provider, threads=threads, spinning=spinning,
                                  optimization_level=optimization_level)
        self.session = None
        self._inputs: list[TensorSpec] = []
        self._outputs: list[str] = []

    def _cache_key(self) -> dict[str, str]:
        import hashlib

        data = self.model if isinstance(self.model, bytes) else Path(self.model).read_bytes()
        return {"source_sha256": hashlib.sha256(data).hexdigest(), "onnxruntime": _import_ort().__version__,
                "provider": self.provider, "optimization_level": str(self._session_args["optimization_level"])}

    def _create_cached(self):
        import json

        from ...artifacts import atomic_write_text

        assert self.optimized_cache is not None
        stamp = self.optimized_cache.with_name(self.optimized_cache.name + ".json")
        key = self._cache_key()
        try:
            hit = self.optimized_cache.is_file() and json.loads(stamp.read_text()) == key
        except (OSError, ValueError):
            hit = False
        self.cache_hit = hit
        if hit:
            return create_session(self.optimized_cache, **{**self._session_args, "optimization_level": "disable"})
        # ORT writes the optimized model itself; write it beside the target and rename when complete.
        self.optimized_cache.parent.mkdir(parents=True, exist_ok=True)
        partial = self.optimized_cache.with_name(f".{self.optimized_cache.name}.partial")
        session = create_session(self.model, **self._session_args, optimized_model_path=partial)
        partial.replace(self.optimized_cache)
        atomic_write_text(stamp, json.dumps(key) + "\n")
        return session

    def activate_impl(self) -> None:
        self.session = self._create_cached() if self.optimized_cache else create_session(self.model, **self._session_args)
        self._inputs = [TensorSpec(i.name, np.dtype(_ORT_TYPES.get(i.type, np.float32)), tuple(
            d if isinstance(d, int) else (d or None) for d in i.shape)) for i in self.session.get_inputs()]
        self._outputs = [o.name for o in self.session.get_outputs()]

    def deactivate_impl(self) -> None:
        self.session = None

    def input_specs(self) -> list[TensorSpec]:
        return self._inputs

    def output_names(self) -> list[str]:
        return self._outputs

    def infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs: Sequence[np.ndarray] = self.session.run(self._outputs, feed)
        return dict(zip(self._outputs, outputs))
