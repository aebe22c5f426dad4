"""OpenVINO (CPU): per-layer times from its performance counters, attributed like ONNX Runtime's.

With ``PERF_COUNT`` on, ``InferRequest.profiling_info`` gives each executed layer's time for the last
inference; the compiled model's runtime graph (``get_runtime_model()``) names, in each layer's
``originalLayersNames``, the ONNX nodes it was fused from, and its edges let the attribution rule
follow reorders to the nodes they serve. Precision is pinned to f32 (``INFERENCE_PRECISION_HINT``):
without it OpenVINO picks bf16 on CPUs that have it, silently. The profiler needs only a compiled
model: :func:`compile_for_profile` is the one place that compiles (the OpenVINO backend's loader can
take its place).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .events import NodeTimes, calibrate
from .measured import RuntimeProfile, interleaved

_SKIPPED = ("Parameter", "Result", "Constant")


def _openvino():
    from ..backends.openvino.loader import import_openvino  # one message naming the extra

    return import_openvino()


def compile_for_profile(model: str | Path | bytes, feed: Mapping[str, np.ndarray], *, threads: int,
                        perf_count: bool) -> Any:
    """An OpenVINO CPU compiled model in f32, static at the feed's shapes, with or without counters."""
    ov = _openvino()
    core = ov.Core()
    with tempfile.TemporaryDirectory(prefix="cbam-ov-") as tmp:
        if isinstance(model, bytes):
            path = Path(tmp) / "model.onnx"
            path.write_bytes(model)
            model = path
        read = core.read_model(str(model))
    read.reshape({name: list(value.shape) for name, value in feed.items()})
    config = {"PERF_COUNT": perf_count, "INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY",
              "INFERENCE_NUM_THREADS": threads}
    return core.compile_model(read, "CPU", config)


def _rt(info: Any, key: str) -> str:
    value = info[key] if key in info else ""
    return value.astype(str) if hasattr(value, "astype") else str(value)


def runtime_graph(compiled: Any) -> tuple[list[tuple[str, str, list[str], list[str]]], dict[str, list[str]]]:
    """(name, layer type, inputs, outputs) of each executed layer, and layer -> ONNX nodes fused into it."""
    ran, fused = [], {}
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        kind = _rt(info, "layerType") or op.get_type_name()
        if kind in ("Input", "Output", "Const", *_SKIPPED):
            continue
        name = op.get_friendly_name()
        inputs = [f"{v.get_node().get_friendly_name()}:{v.get_index()}" for v in op.input_values()]
        ran.append((name, kind, inputs, [f"{name}:{i}" for i in range(op.get_output_size())]))
        fused[name] = [n for n in _rt(info, "originalLayersNames").split(",") if n]
    return ran, fused


def profile_openvino(model: str | Path | bytes, feed: Mapping[str, np.ndarray], *, threads: int = 2,
                     warmup: int = 5, runs: int = 30, extra: Mapping[str, str | bytes] | None = None) -> RuntimeProfile:
    """Per-layer times (performance counters) of one request, and the latency of one without counters,
    timed interleaved with the ``extra`` models."""
    profiled = compile_for_profile(model, feed, threads=threads, perf_count=True)
    plain = compile_for_profile(model, feed, threads=threads, perf_count=False)
    request, plain_request = profiled.create_infer_request(), plain.create_infer_request()
    times = NodeTimes()

    def profiled_call() -> None:
        t0 = time.perf_counter()
        request.infer(dict(feed))
        times.run_ms.append(1000 * (time.perf_counter() - t0))
        for p in request.profiling_info:
            if p.status.name == "EXECUTED" and p.node_type not in _SKIPPED:
                times.op_types.setdefault(p.node_name, p.node_type)
                times.per_run.setdefault(p.node_name, []).append(p.real_time.total_seconds() * 1000)

    calls = {"e2e": lambda: plain_request.infer(dict(feed)), "profiled": profiled_call}
    for label, other in (extra or {}).items():
        calls[label] = (lambda r: lambda: r.infer(dict(feed)))(
            compile_for_profile(other, feed, threads=threads, perf_count=False).create_infer_request())
    samples = interleaved(calls, warmup, runs)
    times.run_ms = times.run_ms[warmup:]
    times.per_run = {n: v[warmup:] for n, v in times.per_run.items() if len(v) > warmup}
    ran, fused = runtime_graph(profiled)
    executed = set(times.per_run)
    ran = [r for r in ran if r[0] in executed] + [(n, times.op_types[n], [], []) for n in executed
                                                   if n not in {r[0] for r in ran}]
    e2e_ms = 1000 * float(np.median(samples["e2e"]))
    node_ms, covered, per_layer = calibrate(times, e2e_ms)
    out = RuntimeProfile("openvino-cpu (f32)", ran, node_ms, e2e_ms, times.run_median, runs, samples, fused_from=fused)
    out.notes.append(f"OpenVINO performance counters: {len(node_ms)} executed layers, {1000 * per_layer:.1f} us of "
                     f"counter cost taken off each; the layers cover {100 * covered:.1f} % of a run")
    return out
