"""``profile_model``: one backend's measured latency attributed to the exported model's PyTorch modules."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Collection, Mapping

import numpy as np
import onnx

from ..errors import UsageError
from .attribution import attribute
from .modules import attention_map, scopes_for
from .report import ProfileReport, ablation_summary, build_report

BACKENDS = ("onnxruntime-cpu", "onnxruntime-cuda", "openvino", "tensorrt")


def _load(model: Any) -> tuple[onnx.ModelProto, str | bytes]:
    """The proto, and what a runtime should load (a path where there is one: no 100 MB copies)."""
    if isinstance(model, onnx.ModelProto):
        return model, model.SerializeToString()
    if isinstance(model, bytes):
        return onnx.load_from_string(model), model
    if isinstance(model, (str, Path)) and Path(model).is_file():
        return onnx.load(str(model)), str(model)
    raise UsageError(f"profile needs an ONNX model (proto, bytes or .onnx path), got {model!r}")


def profile_model(model: Any, feed: Mapping[str, np.ndarray], *, backend: str = "onnxruntime-cpu",
                  threads: int = 2, warmup: int = 5, runs: int = 30, name: str = "model",
                  modules: Collection[str] | None = None, optimization_level: str = "all",
                  ablation: str | None = None, also_time: Mapping[str, str | bytes] | None = None,
                  plan: str | Path | None = None) -> ProfileReport:
    """Time ``model`` on ``backend`` with its profiler and without, and attribute each executed node to a
    PyTorch module (rule: :data:`cbam_deploy.profiling.attribution.RULE`).

    ``modules``: the PyTorch module paths (``dict(model.named_modules())``); read from the graph's node
    names, scopes and weight names when not given. ``ablation``: ``"network"`` also times the graph with
    every attention block bypassed (:mod:`.ablation`), ``"stages"`` also one per stage, in the same rounds.
    ``also_time``: other models (label -> path or bytes, same inputs) timed in those rounds too, e.g.
    the plain host network; their medians are in ``report.ablation["timed_ms"]``. ``plan``: the TensorRT
    engine built from ``model`` (backend ``tensorrt``; UNVERIFIED, needs a GPU).
    """
    if backend not in BACKENDS:
        raise UsageError(f"unknown profiling backend {backend!r}; valid: {', '.join(BACKENDS)}")
    if runs < 3 or warmup < 0:
        raise UsageError(f"a profile needs at least 3 runs and a non-negative warm-up, got runs={runs}, warmup={warmup}")
    proto, loadable = _load(model)
    scopes = scopes_for(proto, set(modules) if modules is not None else None)
    attention = attention_map(proto, scopes)
    if ablation not in (None, "network", "stages"):
        raise UsageError(f"unknown ablation {ablation!r}; valid: network, stages")
    extra = {}
    if ablation and attention.order:
        from .ablation import ablation_models

        extra = ablation_models(proto, attention, per_stage=ablation == "stages")
    extra.update(also_time or {})
    if backend.startswith("onnxruntime"):
        from .ort import profile_onnxruntime

        measured = profile_onnxruntime(loadable, feed, provider=backend.split("-", 1)[1], threads=threads,
                                       warmup=warmup, runs=runs, optimization_level=optimization_level, extra=extra)
    elif backend == "openvino":
        from .openvino import profile_openvino

        measured = profile_openvino(loadable, feed, threads=threads, warmup=warmup, runs=runs, extra=extra)
    else:
        if plan is None or extra:
            raise UsageError("tensorrt profiling needs plan= (the engine built from this ONNX) and takes no "
                             "ablation or also_time (they would need engines of their own)")
        from .tensorrt import profile_tensorrt

        measured = profile_tensorrt(plan, feed, warmup=warmup, runs=runs)
    attributions = attribute(proto, scopes, attention, measured.ran, measured.fused_from)
    report = build_report(name, measured.backend, measured.node_ms, {n: op for n, op, _, _ in measured.ran},
                          attributions, measured.e2e_ms, measured.profiled_ms, measured.runs, attention.parts,
                          attention.order)
    report.notes.extend(measured.notes)
    if ablation or also_time:
        report.ablation = ablation_summary(report, measured.samples)
    if not attention.order:
        report.notes.append("no attention block found (no sigmoid gate multiplying a feature map): attention share 0")
    from .tips import what_to_try

    report.tips = what_to_try(report)
    return report
