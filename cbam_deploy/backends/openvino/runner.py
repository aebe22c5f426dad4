"""The OpenVINO runner: takes what the loader makes (a ``CompiledModelFromOnnx``, or an ONNX path/bytes
from which one is made) and owns the compiled model only while active."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from ...errors import UsageError
from ..base import Runner, TensorSpec
from .loader import DEFAULT_CACHE, HINTS, CompiledModelFromOnnx, port_name, precision_of


class OpenVinoRunner(Runner):
    """Runs an ONNX model with OpenVINO on the CPU.

    One infer request per activation; OpenVINO's infer requests are not re-entrant, so calls from
    several threads are serialised (``Runner._lock``). Outputs are copied out of the request.
    ``inference_precision`` is what the compiled model reports (f32 or bf16), read after compiling.
    """

    def __init__(self, model: str | Path | bytes | Callable[[], object], *, precision: str = "fp32",
                 threads: int | None = None, cache_dir: str | Path | None = DEFAULT_CACHE,
                 keep_attention_f32: bool = True, allow_nonfinite: bool = False) -> None:
        super().__init__(allow_nonfinite=allow_nonfinite)
        if callable(model) and not isinstance(model, (str, Path, bytes)):
            self.loader = model
        else:
            if precision not in HINTS:
                raise UsageError(f"the openvino backend runs precision fp32 or bf16 (the ONNX file gives fp16 "
                                 f"and int8), not {precision!r}")
            self.loader = CompiledModelFromOnnx(model, precision=precision, threads=threads, cache_dir=cache_dir,
                                                keep_attention_f32=keep_attention_f32)
        self.precision = getattr(self.loader, "precision", precision)
        self.name = f"openvino[cpu {self.precision}]"
        self.compiled = None
        self.request = None
        self.inference_precision: str | None = None
        self._inputs: list[TensorSpec] = []
        self._outputs: list[str] = []

    @property
    def cache_hit(self) -> bool | None:
        """Whether the last compiled model came from OpenVINO's model cache (None with the cache off)."""
        return getattr(self.loader, "cache_hit", None)

    def activate_impl(self) -> None:
        self.compiled = self.loader()
        self.request = self.compiled.create_infer_request()
        self.inference_precision = precision_of(self.compiled)
        names = getattr(self.loader, "io_names", None)
        self._inputs = [TensorSpec(port_name(p, names), np.dtype(p.get_element_type().to_dtype()), tuple(
            d.get_length() if d.is_static else None for d in p.get_partial_shape())) for p in self.compiled.inputs]
        self._outputs = [port_name(p, names) for p in self.compiled.outputs]

    def deactivate_impl(self) -> None:
        self.request = None
        self.compiled = None
        self._inputs, self._outputs = [], []

    def input_specs(self) -> list[TensorSpec]:
        return self._inputs

    def output_names(self) -> list[str]:
        return self._outputs

    def infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with self._lock:
            ports = {s.name: i for i, s in enumerate(self._inputs)}
            results = self.request.infer({ports[k]: np.ascontiguousarray(v) for k, v in feed.items()},
                                         share_outputs=False)
            return {name: np.array(results[port]) for name, port in zip(self._outputs, self.compiled.outputs)}
