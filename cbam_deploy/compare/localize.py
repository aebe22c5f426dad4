"""Where parity stops holding: the first PyTorch module whose output leaves the tolerance.

One ONNX Runtime run of a copy of the graph with every module's output exposed, one eager forward
with hooks, each pair compared with the parity metrics, in the order eager computes them. The
report names the first module out of tolerance (``layer3.1.conv2``) with the error of its inputs,
so a layer that broke the output is told apart from one where accumulated error crossed the line,
and gives a per-block table for every attention block the attention finder sees (CBAM, SE, ECA,
Coordinate Attention, SimAM...: after its channel gate, after its spatial gate, after the block;
``localize_blocks.py``). Builds and opens nothing: the graph it runs is the one it is given, on the
runner that ``open_graph`` (handed in by ``api.localize``) opens over it.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np
import onnx

from ..errors import UsageError
from .eager_capture import Activation, Capture, capture, capture_inputs, user_modules
from .graph_scopes import ModuleTensors, exposed_bytes, module_tensors, node_scopes
from .localize_blocks import attention_gates, block_rows
from .parity import OutputComparison, compare_output
from .tolerances import Tolerance, tolerance_for

if TYPE_CHECKING:
    from torch import nn

    from ..backends.base import Runner

_PASS_THROUGH = ("QuantizeLinear", "DequantizeLinear", "Cast")  # pass a tensor on, at another precision
_MAX_CALLS = 4  # calls of one module matched by least error (permutations: 4! at most)


@dataclass
class ModuleError:
    """One module call's output against eager."""

    module: str
    call: int
    tensor: str  # the ONNX tensor it was paired with
    shape: tuple[int, ...]
    scaled_error: float
    cosine: float
    max_abs_error: float
    failures: list[str] = field(default_factory=list)
    folded: str | None = None  # BatchNorm folded into this layer (its eager output is the BatchNorm's)

    @property
    def label(self) -> str:
        return self.module + (f" (call {self.call + 1})" if self.call else "")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "shape": list(self.shape)}


@dataclass
class BlockRow:
    """One attention block: error after its channel gate, its spatial gate, and the block itself."""

    block: str
    channel: float | None = None
    spatial: float | None = None
    output: float | None = None
    growth: float | None = None  # this block's output error / the previous block's
    notes: list[str] = field(default_factory=list)


@dataclass
class LocalizationReport:
    precision: str
    tolerance: Tolerance
    first: ModuleError | None
    first_inputs: list[dict[str, Any]]
    verdict: str
    modules: list[ModuleError]
    blocks: list[BlockRow]
    outputs: list[OutputComparison]
    unpaired: dict[str, str]
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.first is None and all(o.passed for o in self.outputs)

    def summary(self) -> str:
        """One line: the module named, its error, its inputs' error."""
        return self.verdict

    def to_dict(self) -> dict[str, Any]:
        return {"precision": self.precision, "tolerance": self.tolerance.to_dict(), "passed": self.passed,
                "verdict": self.verdict, "first": self.first.to_dict() if self.first else None,
                "first_inputs": self.first_inputs, "modules": [m.to_dict() for m in self.modules],
                "blocks": [asdict(b) for b in self.blocks],
                "outputs": [{**asdict(o), "shape": list(o.shape)} for o in self.outputs],
                "unpaired": self.unpaired, "notes": self.notes, "seconds": round(self.seconds, 3)}

    def to_markdown(self) -> str:
        from .localize_render import markdown

        return markdown(self)

    def rich_table(self):
        """The verdict, the modules up to the first failing one and the block table, for rich to print."""
        from .localize_render import renderable

        return renderable(self)

    def __str__(self) -> str:
        return self.verdict


def _load(model: Any) -> onnx.ModelProto:
    """An ONNX proto from a proto, serialized bytes, a path, or anything with ``.proto`` (an exported model)."""
    proto = getattr(model, "proto", model)
    if isinstance(proto, onnx.ModelProto):
        return proto
    if isinstance(proto, bytes):
        return onnx.load_from_string(proto)
    if isinstance(proto, (str, Path)) and Path(proto).is_file():
        return onnx.load(str(proto))
    raise UsageError(f"localize needs an ONNX model (proto, bytes, .onnx path or exported model), got {type(model).__name__}")


def localize(exported_model_or_onnx: Any, eager_module: "nn.Module", feed: Mapping[str, np.ndarray], *,
             open_graph: Callable[[bytes], "Runner"], precision: str = "fp32",
             tolerance: Tolerance | None = None) -> LocalizationReport:
    """Compare every module's output in the ONNX graph with eager's on ``feed`` (float32 arrays by
    input name) and name the first module out of ``tolerance`` (default: the precision's table).

    ``exported_model_or_onnx``: an ONNX proto, its bytes, a ``.onnx`` path or an exported model
    (anything with ``.proto``), at any precision. ``open_graph``: an inactive runner over the serialized
    graph with every module's output exposed, letting NaN/Inf through (they are what is looked for);
    ``cbam_deploy.api.localize`` hands in ONNX Runtime's.
    """
    from ..backends.base import cast_feed

    start = time.perf_counter()
    tolerance = tolerance or tolerance_for(precision)
    proto = _load(exported_model_or_onnx)
    if eager_module.training:
        raise UsageError("the eager model is in training mode; call model.eval() first")
    modules = user_modules(eager_module)
    scopes = node_scopes(proto, modules)
    tensors = module_tensors(proto, scopes)
    gates = attention_gates(proto, scopes)
    initializers = {t.name for t in proto.graph.initializer}
    input_names = [i.name for i in proto.graph.input if i.name not in initializers]
    missing = [n for n in input_names if n not in feed]
    if missing:
        raise UsageError(f"the feed has no value for input(s) {', '.join(missing)} (given: {', '.join(feed)})")
    exposed = {t for m in tensors.values() for t in (*m.outputs, *m.inputs)} | {g.activation for g in gates}
    # NaN/Inf inside the graph is what is being looked for here, not a reason to stop.
    with open_graph(exposed_bytes(proto, sorted(exposed))) as runner:
        values = runner.infer(cast_feed(runner, {n: np.asarray(feed[n], np.float32) for n in input_names}))
    values = {k: v.astype(np.float32, copy=False) for k, v in values.items()}
    captured = capture(eager_module, feed, input_names, set(tensors))
    activations = captured.activations
    with np.errstate(all="ignore"):  # Inf/NaN tensors (an FP16 overflow) are reported as failures, not warned about
        pairs, unpaired = _pair(activations, tensors, values, modules)
        errors = [_compare(act, tensor, values[tensor], tolerance) for act, tensor in pairs]
        first = next((e for e in errors if e.failures), None)
        producer = {o: n for n in proto.graph.node for o in n.output}
        first_inputs = _input_errors(first, tensors, values, errors, captured, eager_module, feed, input_names,
                                     tolerance, producer) if first else []
        outputs = [compare_output(o.name, values[o.name], ref, tolerance, classifier=False)
                   for o, ref in zip(proto.graph.output, captured.outputs)]
    report = LocalizationReport(precision, tolerance, first, first_inputs, "", errors,
                                block_rows(gates, errors, values, activations), outputs, unpaired)
    report.verdict = _verdict(report)
    if any(n.op_type == "QuantizeLinear" for n in proto.graph.node):
        report.notes.append("Q/DQ graph: with its intermediate tensors exposed, ONNX Runtime does not fuse Q/DQ pairs "
                            "into integer kernels, so per-module errors are those of the simulated quantization")
    report.seconds = time.perf_counter() - start
    return report


def _pair(activations: list[Activation], tensors: dict[str, ModuleTensors], values: dict[str, np.ndarray],
          modules: Mapping[str, Any]) -> tuple[list[tuple[Activation, str]], dict[str, str]]:
    """(eager call, ONNX tensor) pairs in eager's order, and why the rest are not paired. A module's
    output is the last tensor of its shape that its nodes write for others; a shared module's calls are
    matched to its candidates by least error."""
    by_module: dict[str, list[Activation]] = {}
    for act in activations:
        by_module.setdefault(act.module, []).append(act)
    pairs: list[tuple[Activation, str]] = []
    unpaired: dict[str, str] = {}
    for name, acts in by_module.items():
        candidates = [t for t in tensors[name].outputs if t in values and values[t].shape == acts[0].value.shape]
        if not candidates:
            unpaired[name] = "no ONNX tensor of its output's shape (fused or rewritten away)"
        elif len(acts) == 1:
            pairs.append((acts[0], candidates[-1]))  # the last one written: the module's result
        elif len(acts) <= _MAX_CALLS and len(acts) <= len(candidates) <= 2 * _MAX_CALLS:
            pairs.extend(zip(acts, _closest(acts, candidates, values)))
        elif len(acts) == len(candidates):
            pairs.extend(zip(acts, candidates))  # many calls: graph order (the exporters trace in call order)
        else:
            unpaired[name] = f"called {len(acts)} times, {len(candidates)} candidate ONNX tensors"
    folded = {a.folded for a in activations if a.folded}
    for name, module in modules.items():
        if name in folded:
            continue
        if name not in by_module and name not in unpaired and not list(module.children()):
            unpaired[name] = "owns no ONNX node" if name not in tensors else "output is not a tensor"
    pairs.sort(key=lambda p: p[0].order)
    return pairs, unpaired


def _closest(acts: list[Activation], candidates: list[str], values: dict[str, np.ndarray]) -> tuple[str, ...]:
    """The candidates for a shared module's calls (the channel MLP on the avg- and the max-pooled
    vector): the assignment with the least total error. Graph order is no guide: the two branches are
    independent, and the quantizer reorders nodes."""
    def error(act: Activation, tensor: str) -> float:
        scale = float(np.abs(act.value).max()) or 1.0
        return float(np.abs(values[tensor] - act.value).max()) / scale

    costs = {(i, t): error(a, t) for i, a in enumerate(acts) for t in candidates}
    return min(itertools.permutations(candidates, len(acts)),
               key=lambda perm: sum(costs[i, t] for i, t in enumerate(perm)))


def _compare(act: Activation, tensor: str, value: np.ndarray, tolerance: Tolerance) -> ModuleError:
    """The parity metrics of one pair. Hundreds of pairs: the gated ones are screened first, cheaply
    (scaled error exactly; cosine through a lower bound, reported as the cosine when it passes with
    margin); a pair that does not clearly pass gets ``compare_output``'s full record and messages."""
    ref = act.value
    if value.shape == ref.shape and np.isfinite(value).all():
        scale = float(np.abs(ref).max()) or 1.0
        diff = (value - ref).ravel()
        max_abs = float(np.abs(diff).max())
        # 1 - cos(o, r) <= |o - r|^2 / (2 |o| |r|): float32 dot products bound it without float64 copies.
        norms = 2.0 * np.sqrt(float(value.ravel() @ value.ravel()) * float(ref.ravel() @ ref.ravel()))
        gap = float(diff @ diff) / norms if norms else float(max_abs > 0)
        if max_abs / scale <= tolerance.max_scaled_error and gap <= 0.5 * (1.0 - tolerance.min_cosine):
            return ModuleError(act.module, act.call, tensor, tuple(value.shape), max_abs / scale, 1.0 - gap, max_abs,
                               [], act.folded)
    cmp = compare_output(tensor, value, ref, tolerance, classifier=False)
    return ModuleError(act.module, act.call, tensor, tuple(value.shape), cmp.scaled_error, cmp.cosine,
                       cmp.max_abs_error, cmp.failures, act.folded)


def _input_errors(first: ModuleError, tensors: dict[str, ModuleTensors], values: dict[str, np.ndarray],
                  errors: list[ModuleError], captured: Capture, eager_module, feed: Mapping[str, np.ndarray],
                  input_names: list[str], tolerance: Tolerance, producer: Mapping[str, onnx.NodeProto]
                  ) -> list[dict[str, Any]]:
    """The error of each tensor the first failing module reads, against the eager call's arguments."""
    args = captured.inputs(first.module, first.call)
    if args is None:
        args = capture_inputs(eager_module, feed, input_names, first.module, first.call)
    out: list[dict[str, Any]] = []
    onnx_inputs = [t for t in tensors[first.module].inputs if t in values or t in feed]
    unused = list(args)
    for tensor in onnx_inputs:
        value = values[tensor] if tensor in values else np.asarray(feed[tensor], np.float32)
        match = next((i for i, a in enumerate(unused) if a.shape == value.shape), None)
        if match is None:
            continue
        cmp = compare_output(tensor, value, unused.pop(match), tolerance, classifier=False)
        source = _source(tensor, {e.tensor: e.label for e in errors}, producer, feed)
        out.append({"tensor": tensor, "from": source, "scaled_error": cmp.scaled_error, "cosine": cmp.cosine})
    return out


def _source(tensor: str, labels: Mapping[str, str], producer: Mapping[str, onnx.NodeProto],
            feed: Mapping[str, np.ndarray]) -> str:
    """Which module wrote ``tensor``, through casts and Q/DQ pairs: ``layer1.0.conv3 -> QuantizeLinear ->
    DequantizeLinear``; empty when functional code did."""
    hops: list[str] = []
    while tensor not in labels and tensor not in feed:
        node = producer.get(tensor)
        if node is None or node.op_type not in _PASS_THROUGH or not node.input:
            return ""
        hops.append(node.op_type)
        tensor = node.input[0]
    return " -> ".join([labels.get(tensor, "graph input"), *reversed(hops)])


def _verdict(report: LocalizationReport) -> str:
    tol = report.tolerance.max_scaled_error
    first = report.first
    if first is None:
        if report.passed:
            return f"every paired module is within tolerance ({len(report.modules)} compared; {report.precision})"
        return ("no module's output leaves the tolerance, but the model's output does: the divergence is in "
                "code outside any module (functional calls in a forward) or in an unpaired module")
    ratio = first.scaled_error / tol if tol else float("inf")
    head = (f"first module out of tolerance: {first.label} (scaled error {first.scaled_error:.3g}, "
            f"{ratio:.3g}x the tolerance {tol:g}")
    inputs = [i["scaled_error"] for i in report.first_inputs]
    if not inputs:
        return head + "; its inputs could not be paired)"
    worst = max(inputs)
    if worst <= 0.1 * tol:
        return head + f"; its inputs match eager to {worst:.2g}): this module introduced the error"
    if worst > tol:  # its producer passed: what changed the tensor sits between two modules
        source = max(report.first_inputs, key=lambda i: i["scaled_error"])["from"] or "functional code"
        return head + (f"; its input from {source} is already off by {worst:.2g}): the error entered between "
                       "modules, where no module's output was out of tolerance")
    return head + f"; its inputs are already off by {worst:.2g}): the error grew here"


def localization_note(model: Any, eager_module, feed: Mapping[str, np.ndarray], *,
                      open_graph: Callable[[bytes], "Runner"], precision: str, tolerance: Tolerance | None = None) -> str:
    """``"; <verdict>"`` to append to a failed parity check's one-line error (cbam-export's).

    A localization that cannot run says so in the note rather than hiding the parity failure.
    """
    try:
        return "; " + localize(model, eager_module, feed, open_graph=open_graph, precision=precision,
                               tolerance=tolerance).verdict
    except Exception as exc:  # the parity failure is the error being reported; this only adds to it
        return f"; (localization could not run: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
