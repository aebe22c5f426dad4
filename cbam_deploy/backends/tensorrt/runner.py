"""Run a TensorRT plan with our runner interface, on Polygraphy's ``TrtRunner`` (device memory and
streams through Polygraphy's CUDA runtime wrapper: no torch CUDA). The sidecar is checked before
the plan is deserialized: a plan from another TensorRT or GPU architecture is refused in one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import UsageError
from ..base import Runner, TensorSpec
from .environment import detect, import_polygraphy_trt, import_tensorrt
from .loader import engine_from_plan
from .sidecar import check_compatible, read_sidecar


class TensorRTRunner(Runner):
    """One engine and execution context while active; ``infer`` is serialised by a lock (a context is
    not re-entrant). Deactivation frees the context, its stream and buffers, and the engine."""

    def __init__(self, plan: str | Path, *, allow_nonfinite: bool = False) -> None:
        super().__init__(allow_nonfinite=allow_nonfinite)
        self.plan = Path(plan)
        self.name = "tensorrt"
        self._runner = None
        self._inputs: list[TensorSpec] = []
        self._outputs: list[str] = []
        self._profile: dict[str, tuple] = {}

    def activate_impl(self) -> None:
        env = detect()
        sidecar = read_sidecar(self.plan)
        check_compatible(sidecar, tensorrt_version=env.tensorrt_version, gpu_name=env.gpu_name,
                         compute_capability=env.compute_capability, plan=str(self.plan))
        ptrt, trt = import_polygraphy_trt(), import_tensorrt()
        from polygraphy.exception import PolygraphyException

        self._runner = ptrt.TrtRunner(engine_from_plan(self.plan.read_bytes()), name=f"tensorrt:{self.plan}")
        try:
            self._runner.activate()
        except PolygraphyException as exc:
            self._runner = None
            raise UsageError(f"TensorRT could not load {self.plan}: {str(exc).strip().splitlines()[-1]}") from None
        engine = self._runner.engine
        self._inputs, self._outputs, self._profile = [], [], {}
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name)))
            if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                shape = tuple(None if d < 0 else int(d) for d in engine.get_tensor_shape(name))
                self._inputs.append(TensorSpec(name, dtype, shape))
                self._profile[name] = tuple(tuple(s) for s in engine.get_tensor_profile_shape(name, 0))
            else:
                self._outputs.append(name)

    def deactivate_impl(self) -> None:
        if self._runner is not None and self._runner.is_active:
            self._runner.deactivate()  # frees the context, stream, device buffers and the engine
        self._runner = None
        self._inputs, self._outputs, self._profile = [], [], {}

    def input_specs(self) -> list[TensorSpec]:
        return self._inputs

    def output_names(self) -> list[str]:
        return self._outputs

    def validate(self, feed):
        checked = super().validate(feed)
        for name, array in checked.items():
            lo, _, hi = self._profile[name]
            if not all(a <= s <= b for a, s, b in zip(lo, array.shape, hi)):
                raise UsageError(f"tensorrt: input {name!r} shape {list(array.shape)} is outside the engine's profile "
                                 f"(min {list(lo)}, max {list(hi)}); rebuild with cbam-build --min-shape/--max-shape")
        return checked

    def infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with self._lock:
            outputs = self._runner.infer({k: np.ascontiguousarray(v) for k, v in feed.items()}, check_inputs=False)
            # TrtRunner reuses its host buffers between calls: copy what the caller keeps.
            return {name: np.array(outputs[name], copy=True) for name in self._outputs}
