"""TensorRT: per-layer times through an ``IProfiler`` on the execution context (UNVERIFIED: written
against TensorRT's documented Python API, tested with ``tensorrt`` faked; no GPU here).

TensorRT calls ``report_layer_time(layer_name, ms)`` for every engine layer after each synchronous
execution. The ONNX parser names layers after ONNX nodes; a fused layer joins them with ``" + "``
(``/layer1/layer1.0/conv1/Conv + /layer1/layer1.0/relu/Relu``), a Myelin region lists its first and
last node (``{ForeignNode[/a/Conv.../b/Mul]}``), and a reformat layer names the layer it feeds
(``Reformatting CopyNode for Input Tensor 0 to /b/Conv``): it is charged to that layer.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .events import NodeTimes, calibrate
from .measured import RuntimeProfile

_REFORMAT = re.compile(r"^Reformatting CopyNode for (?:Input|Output) Tensor \d+ to (.+)$")
_FOREIGN = re.compile(r"^\{ForeignNode\[(.+)\]\}$")


def fused_names(layer: str) -> list[str]:
    """The ONNX node names a TensorRT layer name stands for."""
    layer = layer.strip()
    m = _REFORMAT.match(layer)
    if m:
        return fused_names(m.group(1))
    m = _FOREIGN.match(layer)
    if m:
        return [n for n in m.group(1).split("...") if n]
    return [n.strip() for n in layer.split(" + ") if n.strip()]


def layer_profiler(trt: Any) -> Any:
    """An ``IProfiler`` collecting each layer's time per execution (``end_run`` closes one)."""

    class LayerTimes(trt.IProfiler):
        def __init__(self) -> None:
            trt.IProfiler.__init__(self)
            self.times = NodeTimes()
            self._current: dict[str, float] = {}

        def report_layer_time(self, layer_name: str, ms: float) -> None:
            self._current[layer_name] = self._current.get(layer_name, 0.0) + float(ms)

        def end_run(self, run_ms: float) -> None:
            for name, ms in self._current.items():
                self.times.op_types.setdefault(name, "Reformat" if _REFORMAT.match(name) else "TensorRT layer")
                self.times.per_run.setdefault(name, []).append(ms)
            self.times.run_ms.append(run_ms)
            self._current = {}

    return LayerTimes()


def runtime_from_layer_times(times: NodeTimes, e2e_ms: float, runs: int,
                             samples: dict[str, list[float]] | None = None) -> RuntimeProfile:
    """What the attribution needs from TensorRT's layer times: each layer with the ONNX nodes it fused."""
    node_ms, covered, per_layer = calibrate(times, e2e_ms)
    ran = [(name, times.op_types.get(name, "TensorRT layer"), [], []) for name in times.per_run]
    profile = RuntimeProfile("tensorrt", ran, node_ms, e2e_ms, times.run_median, runs, samples or {},
                             fused_from={name: fused_names(name) for name in times.per_run})
    profile.notes.append(f"TensorRT IProfiler: {len(node_ms)} layers, {1000 * per_layer:.1f} us of profiler cost "
                         f"taken off each; layers cover {100 * covered:.1f} % of a run. UNVERIFIED on a GPU")
    profile.notes.append("TensorRT layers carry no graph edges here: reformat layers are charged to the layer they "
                         "feed, and the un-fused-epilogue rule applies only where a layer's name lists the nodes")
    return profile


def profile_tensorrt(plan: str | Path, feed: Mapping[str, np.ndarray], *, warmup: int = 5,
                     runs: int = 30) -> RuntimeProfile:
    """Two contexts of one plan, interleaved: one with the profiler (layer times), one without (latency)."""
    import time

    from ..backends.tensorrt.runner import TensorRTRunner
    from ..backends.tensorrt.environment import import_tensorrt

    trt = import_tensorrt()
    with TensorRTRunner(plan) as profiled, TensorRTRunner(plan) as plain:
        profiler = layer_profiler(trt)
        profiled._runner.context.profiler = profiler
        samples: dict[str, list[float]] = {"e2e": [], "profiled": []}
        for i in range(warmup + runs):
            t0 = time.perf_counter()
            plain.infer(dict(feed))
            t1 = time.perf_counter()
            profiled.infer(dict(feed))
            t2 = time.perf_counter()
            profiler.end_run(1000 * (t2 - t1))
            if i >= warmup:
                samples["e2e"].append(t1 - t0)
                samples["profiled"].append(t2 - t1)
    times = profiler.times
    times.per_run = {n: v[warmup:] for n, v in times.per_run.items()}
    times.run_ms = times.run_ms[warmup:]
    return runtime_from_layer_times(times, 1000 * float(np.median(samples["e2e"])), runs, samples)
