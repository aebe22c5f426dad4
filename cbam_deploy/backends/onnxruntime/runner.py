"""The ONNX Runtime runner: takes what the loader makes (a ``SessionFromOnnx``, or a model from
which one is made) and owns the session only while active."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..base import Runner, TensorSpec
from .loader import SessionFromOnnx

_ORT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
              "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(uint8)": np.uint8,
              "tensor(int8)": np.int8, "tensor(bool)": np.bool_}


class OnnxRuntimeRunner(Runner):
    """Runs an ONNX model in ONNX Runtime. ``InferenceSession.run`` is thread-safe, so no lock.

    ``model`` is a loader (any callable returning a session, e.g. ``SessionFromOnnx``) or an ONNX
    path/bytes, in which case the keyword options build the ``SessionFromOnnx``. Each activation
    makes one session; deactivation drops it.
    """

    def __init__(self, model: str | Path | bytes | Callable[[], object], *, provider: str = "cpu",
                 threads: int | None = None, spinning: bool = True, optimization_level: str = "all",
                 allow_nonfinite: bool = False, optimized_cache: str | Path | None = None) -> None:
        super().__init__(allow_nonfinite=allow_nonfinite)
        if callable(model) and not isinstance(model, (str, Path, bytes)):
            self.loader = model
        else:
            self.loader = SessionFromOnnx(model, provider=provider, threads=threads, spinning=spinning,
                                          optimization_level=optimization_level, optimized_cache=optimized_cache)
        self.provider = getattr(self.loader, "provider", provider)
        self.name = f"onnxruntime[{self.provider}]"
        self.session = None
        self._inputs: list[TensorSpec] = []
        self._outputs: list[str] = []

    @property
    def cache_hit(self) -> bool | None:
        """Whether the last session came from the optimized-model cache (None without a cache)."""
        return getattr(self.loader, "cache_hit", None)

    def activate_impl(self) -> None:
        self.session = self.loader()
        self._inputs = [TensorSpec(i.name, np.dtype(_ORT_TYPES.get(i.type, np.float32)), tuple(
            d if isinstance(d, int) else (d or None) for d in i.shape)) for i in self.session.get_inputs()]
        self._outputs = [o.name for o in self.session.get_outputs()]

    def deactivate_impl(self) -> None:
        self.session = None
        self._inputs, self._outputs = [], []

    def input_specs(self) -> list[TensorSpec]:
        return self._inputs

    def output_names(self) -> list[str]:
        return self._outputs

    def infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs: Sequence[np.ndarray] = self.session.run(self._outputs, feed)
        return dict(zip(self._outputs, outputs))
