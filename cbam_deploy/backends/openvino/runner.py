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

    ``static_shapes``: a model with dynamic axes is compiled once more, static, for each of the first
    ``static_shapes`` input shapes it is called with (OpenVINO's static-shape kernels are faster: up
    to 13 % less latency in INT8 here), and runs dynamic for shapes beyond those. The first call at a
    new shape pays that compile (about 2 s for an INT8 ResNet-50; OpenVINO's model cache keeps it for
    the next start). 0 keeps the one dynamic compile (serving does: no compile inside a request).
    """

    def __init__(self, model: str | Path | bytes | Callable[[], object], *, precision: str = "fp32",
                 threads: int | None = None, cache_dir: str | Path | None = DEFAULT_CACHE,
                 keep_attention_f32: bool = True, allow_nonfinite: bool = False, static_shapes: int = 4) -> None:
        super().__init__(allow_nonfinite=allow_nonfinite)
        if static_shapes < 0:
            raise UsageError(f"static_shapes must be >= 0, got {static_shapes}")
        self.static_shapes = static_shapes
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
        self._static: dict[tuple, tuple[object, object]] = {}  # input shapes -> (compiled, request)
        self._specialize = False  # set at activation: dynamic axes, static_shapes > 0 and a loader with at_shapes

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
        self._specialize = (self.static_shapes > 0 and hasattr(self.loader, "at_shapes")
                            and any(d is None for spec in self._inputs for d in spec.shape))

    def deactivate_impl(self) -> None:
        self._static, self._specialize = {}, False
        self.request = None
        self.compiled = None
        self._inputs, self._outputs = [], []

    def input_specs(self) -> list[TensorSpec]:
        return self._inputs

    def output_names(self) -> list[str]:
        return self._outputs

    @property
    def static_compiled(self) -> list[tuple]:
        """The input shapes compiled static so far (see ``static_shapes``)."""
        return list(self._static)

    def _request_for(self, feed: dict[str, np.ndarray]):
        """(compiled model, infer request) for this feed: the static compile for its shapes where the
        model has dynamic axes and ``static_shapes`` allows one, else the dynamic one."""
        if not self._specialize:
            return self.compiled, self.request
        key = tuple((name, tuple(feed[name].shape)) for name in sorted(feed))
        if key not in self._static:
            if len(self._static) >= self.static_shapes:
                return self.compiled, self.request
            compiled = self.loader.at_shapes(dict(key))
            self._static[key] = (compiled, compiled.create_infer_request())
        return self._static[key]

    def infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with self._lock:
            compiled, request = self._request_for(feed)
            # Ports by position: a static compile has the dynamic one's inputs and outputs in the same order.
            ports = {s.name: i for i, s in enumerate(self._inputs)}
            results = request.infer({ports[k]: np.ascontiguousarray(v) for k, v in feed.items()}, share_outputs=False)
            return {name: np.array(results[port]) for name, port in zip(self._outputs, compiled.outputs)}
