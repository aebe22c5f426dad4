"""The export's stages, each a function: what it needs in, a typed result out.

    prepare -> fold -> export -> simplify -> check -> optimize -> precision -> (parity) -> write

``run.py`` composes them (the parity stages are in ``parity.py``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import onnx
import torch
from torch import nn

from ...backends.base import TensorSpec
from ...errors import CheckFailedError, UsageError
from ...fold import FoldReport, fold_batchnorms
from ...onnx_export import graph
from ...onnx_export.outputs import FlatOutputs, exportable, flatten_module, flatten_outputs, output_axes
from ...onnx_export.torch_to_onnx import dynamic_axes_for, export_to_onnx
from ...optimize import OptimizeReport


@dataclass
class Prepared:
    """The model with flat outputs, its inputs' names, dynamic axes and the inputs to trace with."""

    eager: FlatOutputs  # the unfolded model: parity's reference
    inputs: tuple[torch.Tensor, ...]
    input_names: list[str]
    output_names: list[str]
    axes: list[dict[int, str]]
    trace_inputs: tuple[torch.Tensor, ...]  # for the dynamo exporter (TorchScript traces ``inputs``)
    expected: dict[str, np.ndarray]  # eager's flat outputs on ``inputs`` (reused: each forward costs)

    @property
    def specs(self) -> list[TensorSpec]:
        return [TensorSpec(n, np.dtype(np.float32), tuple(None if i in a else d for i, d in enumerate(x.shape)))
                for n, x, a in zip(self.input_names, self.inputs, self.axes)]

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        return [tuple(x.shape) for x in self.inputs]


def prepare(model: nn.Module, inputs: tuple[torch.Tensor, ...], *, dynamic: str, classifier: bool,
            input_names: Sequence[str] | None, output_names: Sequence[str] | None) -> Prepared:
    """Check the model and inputs, run eager once, name inputs and (flattened) outputs, set the axes."""
    from ...models.user_model import describe_exception

    if model.training:
        raise UsageError("the model is in training mode; call model.eval() before exporting")
    names = list(input_names or (["input"] if len(inputs) == 1 else [f"input_{i}" for i in range(len(inputs))]))
    if len(names) != len(inputs):
        raise UsageError(f"{len(names)} input names for {len(inputs)} example inputs")
    if dynamic in ("hw", "all") and not any(x.dim() >= 4 for x in inputs):
        raise UsageError(f"--dynamic {dynamic} needs an N x C x H x W input; the inputs have ranks "
                         f"{', '.join(str(x.dim()) for x in inputs)}")
    try:
        with torch.no_grad():
            output = model(*inputs)
    except Exception as exc:  # the user's forward rejected the inputs: say where, in one line
        shapes = ", ".join("x".join(map(str, x.shape)) for x in inputs)
        raise UsageError(f"the model's forward failed on example input(s) of shape {shapes} "
                         f"{describe_exception(exc)}") from exc
    eager, out_names = flatten_module(model, output, classifier=classifier, names=output_names)
    # H and W are dynamic only for image inputs; other inputs (e.g. a feature vector) keep the batch axis.
    low_rank_mode = {"all": "batch", "hw": "none"}.get(dynamic, dynamic)
    axes = [dynamic_axes_for(dynamic if x.dim() >= 4 else low_rank_mode, x.dim()) for x in inputs]
    # torch.export specialises a size-1 dimension to a constant: dynamo traces a dynamic batch at 2.
    trace = tuple(x.expand(2, *x.shape[1:]).contiguous() if 0 in a and x.shape[0] == 1 else x
                  for x, a in zip(inputs, axes))
    flat = {n: t.detach().float().numpy() for n, (_, t) in zip(out_names, flatten_outputs(output))}
    return Prepared(eager, inputs, names, out_names, axes, trace, flat)


@dataclass
class Folded:
    module: nn.Module  # folded, whole-map pooling made global; flattened outputs where it needs them
    report: FoldReport
    pooling_rewrites: int = 0
    pooling_left: list[str] = field(default_factory=list)  # adaptive pooling with no exact dynamic form, and why


def fold(prepared: Prepared) -> Folded:
    """BatchNorm into Conv/Linear; size-derived whole-map pooling made adaptive when H, W are dynamic."""
    from ...optimize import globalize_pooling

    folded, report = fold_batchnorms(prepared.eager.model)
    # Always: with H, W dynamic a kernel from x.size() would pin them, and even with H, W fixed the
    # TorchScript exporter rejects a kernel it traced from x.size() (the CBAM authors' pooling).
    left: list[str] = []
    folded, found = globalize_pooling(folded, prepared.inputs, left=left)
    return Folded(exportable(folded, prepared.eager.paths), report, len(found), left)


@dataclass
class Exported:
    proto: onnx.ModelProto
    ops: dict[str, int]
    exporter: str
    warnings: list[str] = field(default_factory=list)  # the TorchScript tracer's, where the trace may freeze values


def export(folded: Folded, prepared: Prepared, *, exporter: str, opset: int, dynamic: str,
           expected: Sequence[Mapping[str, np.ndarray]]) -> Exported:
    """torch -> ONNX; a requested dynamic axis the exporter made fixed is an error.

    ``expected``: eager outputs at two or more input shapes (the parity plan's), from which the
    outputs' dynamic axes are read.
    """
    first, last = expected[0], expected[-1]
    out_axes = output_axes([torch.from_numpy(v) for v in first.values()], [torch.from_numpy(v) for v in last.values()],
                           prepared.output_names, prepared.axes[0])
    notes: list[str] = []
    # TorchScript records sizes as they flow (no specialisation of a batch of 1), so it traces the
    # example inputs: half the compute of a batch of 2. Parity at batch 3 covers the batch axis.
    inputs = prepared.trace_inputs if exporter == "dynamo" else prepared.inputs
    try:
        proto = export_to_onnx(folded.module, inputs, input_names=prepared.input_names,
                               output_names=prepared.output_names, dynamic_axes=prepared.axes, opset=opset,
                               exporter=exporter, output_axes=out_axes, notes=notes)
    except CheckFailedError as exc:
        if not folded.pooling_left:
            raise
        raise CheckFailedError(f"{exc}; adaptive pooling left as written: {'; '.join(folded.pooling_left)}") from exc
    fixed = graph.specialized_axes(proto, dict(zip(prepared.input_names, prepared.axes)))
    if fixed:
        raise CheckFailedError(
            f"--dynamic {dynamic} asked for dynamic axes the exporter made fixed ({', '.join(fixed)}): the "
            "model's code ties them to the traced size (e.g. a pooling kernel taken from x.size()); "
            "use adaptive/global pooling there, or a --dynamic mode without those axes")
    return Exported(proto, graph.op_counts(proto), exporter, notes)


def simplify(proto: onnx.ModelProto) -> onnx.ModelProto:
    """onnxsim, its own numeric check included."""
    return graph.simplify(proto)


def check(proto: onnx.ModelProto, fold_report: FoldReport, *, simplified: bool) -> tuple[onnx.ModelProto, list[str]]:
    """onnx.checker + shape inference; no BatchNormalization left; Identity only when not simplified."""
    proto = graph.check(proto)
    forbidden = graph.forbidden_ops(proto)
    if forbidden.get("BatchNormalization"):
        raise CheckFailedError(f"the exported graph still has {forbidden['BatchNormalization']} BatchNormalization "
                               f"nodes (unfolded: {', '.join(fold_report.unfolded) or 'none reported'})")
    notes = []
    if forbidden.get("Identity"):
        message = f"the exported graph has {forbidden['Identity']} Identity nodes"
        if simplified:
            raise CheckFailedError(message)
        notes.append(message + " (simplification is off)")
    return proto, notes


def optimize(proto: onnx.ModelProto, rewrites: Sequence[str]) -> tuple[onnx.ModelProto, OptimizeReport]:
    """The CBAM-aware rewrites asked for (``optimize_graph`` runs onnx.checker's full check on its result)."""
    from ...optimize import optimize_graph

    if not rewrites:
        return proto, OptimizeReport()
    return optimize_graph(proto, list(rewrites))


def metadata(prepared: Prepared, base: Mapping[str, Any], *, opset: int, precision_name: str, classifier: bool,
             exporter: str, rewrites: Mapping[str, int]) -> dict[str, Any]:
    """What the ONNX says about itself (``metadata_props``) and export.json repeats."""
    from ...onnx_export.metadata import package_versions

    return {
        **base, "graph_rewrites": dict(rewrites),
        "input_names": prepared.input_names, "output_names": prepared.output_names,
        "input_shapes": [list(s) for s in prepared.shapes],
        "dynamic_axes": {n: {str(k): v for k, v in a.items()} for n, a in zip(prepared.input_names, prepared.axes)},
        "opset": opset, "precision": precision_name, "classifier": classifier, "exporter": exporter,
        "versions": package_versions(),
    }


@dataclass
class Written:
    model_dir: Path
    onnx_path: Path
    report_path: Path
    config_path: Path
    size_bytes: int
    sha256: str
    extra: dict[str, Any] = field(default_factory=dict)


def write(staging: Path, target: Path, name: str, data: bytes, signature: Mapping[str, Any],
          meta: Mapping[str, Any], *, triton_max_batch: int) -> Written:
    """model.onnx and Triton's config.pbtxt into the staging folder (published with export.json)."""
    from ...layout import CONFIG_FILE, MODEL_FILE, REPORT_FILE, VERSION_DIR
    from ...serving.triton_config import build_config, write_config

    (staging / VERSION_DIR).mkdir()
    (staging / VERSION_DIR / MODEL_FILE).write_bytes(data)
    write_config(staging, build_config(name, signature, kind="onnx", max_batch_size=triton_max_batch, metadata=meta))
    return Written(target, target / VERSION_DIR / MODEL_FILE, target / REPORT_FILE, target / CONFIG_FILE, len(data),
                   hashlib.sha256(data).hexdigest())


def write_report(staging: Path, report: Mapping[str, Any]) -> None:
    from ...artifacts import atomic_write_text
    from ...layout import REPORT_FILE

    atomic_write_text(staging / REPORT_FILE, json.dumps(report, indent=2) + "\n")
