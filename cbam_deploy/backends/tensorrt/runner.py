"""Run a TensorRT plan with the runner interface. Buffers are torch CUDA tensors (torch is already a
dependency), so no extra CUDA bindings are needed. The sidecar is checked before deserializing."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import UsageError
from ..base import Runner, TensorSpec
from .environment import detect, import_tensorrt
from .sidecar import check_compatible, read_sidecar


class TensorRTRunner(Runner):
    """One execution context; ``infer`` is serialised by a lock (a context is not re-entrant)."""

    def __init__(self, plan: str | Path, *, allow_nonfinite: bool = False) -> None:
        super().__init__(allow_nonfinite=allow_nonfinite)
        self.plan = Path(plan)
        self.name = "tensorrt"
        self._inputs: list[TensorSpec] = []
        self._outputs: list[str] = []
        self._profile: dict[str, tuple] = {}

    def activate_impl(self) -> None:
        env = detect()
        sidecar = read_sidecar(self.plan)
        check_compatible(sidecar, tensorrt_version=env.tensorrt_version, gpu_name=env.gpu_name,
                         compute_capability=env.compute_capability, plan=str(self.plan))
        trt = import_tensorrt()
        self._trt = trt
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = self._runtime.deserialize_cuda_engine(self.plan.read_bytes())
        if self.engine is None:
            raise UsageError(f"TensorRT could not deserialize {self.plan}")
        self.context = self.engine.create_execution_context()
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            dtype = np.dtype(trt.nptype(self.engine.get_tensor_dtype(name)))
            if self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                shape = tuple(None if d < 0 else int(d) for d in self.engine.get_tensor_shape(name))
                self._inputs.append(TensorSpec(name, dtype, shape))
                self._profile[name] = tuple(tuple(s) for s in self.engine.get_tensor_profile_shape(name, 0))
            else:
                self._outputs.append(name)

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
        import torch

        with self._lock:
            stream = torch.cuda.current_stream()
            keep = {}
            for name, array in feed.items():
                tensor = torch.from_numpy(np.ascontiguousarray(array)).cuda()
                keep[name] = tensor
                self.context.set_input_shape(name, tuple(array.shape))
                self.context.set_tensor_address(name, tensor.data_ptr())
            outputs = {}
            for name in self._outputs:
                shape = tuple(self.context.get_tensor_shape(name))
                dtype = self._trt.nptype(self.engine.get_tensor_dtype(name))
                tensor = torch.empty(shape, dtype=getattr(torch, np.dtype(dtype).name), device="cuda")
                outputs[name] = tensor
                self.context.set_tensor_address(name, tensor.data_ptr())
            if not self.context.execute_async_v3(stream.cuda_stream):
                raise RuntimeError("TensorRT execution failed")
            stream.synchronize()
            return {name: t.cpu().numpy() for name, t in outputs.items()}
