"""FP16 ONNX for strongly typed TensorRT: half precision everywhere except CBAM's attention.

Sigmoid gates, channel-wise mean/max, global pooling and the channel MLP on pooled features are
where half precision loses accuracy; they are cheap, so every attention region stays FP32 (found by
pattern, see ``attention.py``), as does any other node the caller names. Conversion itself is
``onnxconverter_common.float16`` (a well-kept tool), with input/output types kept FP32 by default.
"""

from __future__ import annotations

import collections
import warnings
from dataclasses import dataclass, field

import onnx

from ..errors import MissingDependencyError
from ..onnx_export.graph import ensure_node_names
from .attention import find_attention_regions

ALWAYS_FP32_OPS = ("Sigmoid", "GlobalAveragePool", "GlobalMaxPool")


@dataclass
class Fp16Report:
    kept_fp32: dict[str, str] = field(default_factory=dict)  # node name -> why
    kept_fp32_ops: dict[str, int] = field(default_factory=dict)  # op type -> count
    casts_inserted: int = 0
    keep_io_types: bool = True
    clamped_values: int = 0  # FP32 values outside FP16's range, clamped by the converter

    def to_dict(self) -> dict[str, object]:
        return {"kept_fp32_ops": self.kept_fp32_ops, "kept_fp32_nodes": len(self.kept_fp32),
                "casts_inserted": self.casts_inserted, "keep_io_types": self.keep_io_types,
                "clamped_values": self.clamped_values,
                "why": sorted(set(self.kept_fp32.values()))}


def fp16_rule_nodes(model: onnx.ModelProto) -> dict[str, str]:
    """Node -> why it stays FP32 by rule (attention regions, FP16-sensitive ops, casts to float32);
    ``model``'s nodes must be named (``ensure_node_names``)."""
    kept: dict[str, str] = {}
    for region in find_attention_regions(model):
        for name in region.nodes:
            kept[name] = ATTENTION_RULE
    silu = _silu_sigmoids(model)
    for node in model.graph.node:
        if node.op_type in ALWAYS_FP32_OPS and node.name not in silu:
            kept.setdefault(node.name, f"{node.op_type} is FP16-sensitive")
        elif node.op_type == "Cast" and _casts_to_float32(node):
            # The converter retypes a Cast's output to FP16 but leaves its `to` at FLOAT, which ONNX
            # Runtime refuses at load (seen in detectors' anchor grids: arange(..., dtype=x.dtype)).
            # Kept FP32, the converter casts its result to FP16 for the nodes that read it.
            kept.setdefault(node.name, "Cast to float32 (index or grid arithmetic)")
    return kept


ATTENTION_RULE = "attention region (pooling, channel MLP, channel mean/max, spatial conv, sigmoid gate)"


def convert_to_fp16(model: onnx.ModelProto, *, keep_io_types: bool = True,
                    keep_fp32_nodes: list[str] | dict[str, str] | None = None) -> tuple[onnx.ModelProto, Fp16Report]:
    """Return an FP16 copy of an FP32 model, attention regions and ``keep_fp32_nodes`` (names, or
    name -> why) in FP32."""
    try:
        from onnxconverter_common import float16
    except ImportError:
        raise MissingDependencyError("FP16 conversion needs onnxconverter-common: pip install onnxconverter-common") from None
    model = onnx.ModelProto.FromString(model.SerializeToString())
    ensure_node_names(model)
    report = Fp16Report(keep_io_types=keep_io_types)
    report.kept_fp32.update(fp16_rule_nodes(model))
    reasons = keep_fp32_nodes if isinstance(keep_fp32_nodes, dict) else dict.fromkeys(keep_fp32_nodes or [], "requested")
    report.kept_fp32.update(reasons)
    if keep_io_types:
        _split_consumed_outputs(model)
    _unshare_initializers(model, set(report.kept_fp32))
    casts_before = sum(n.op_type == "Cast" for n in model.graph.node)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        converted = float16.convert_float_to_float16(
            model, keep_io_types=keep_io_types, node_block_list=list(report.kept_fp32),
            op_block_list=list(float16.DEFAULT_OP_BLOCK_LIST), disable_shape_infer=False)
    _drop_cast_round_trips(converted, set(report.kept_fp32))
    if keep_io_types:
        _float_outputs(converted)
    # One warning per weight too small (or large) for FP16, clamped to 1e-7 (or 1e4): count them.
    report.clamped_values = sum("truncated" in str(w.message) for w in caught)
    report.casts_inserted = sum(n.op_type == "Cast" for n in converted.graph.node) - casts_before
    kinds = {n.name: n.op_type for n in model.graph.node}
    report.kept_fp32_ops = dict(collections.Counter(kinds[n] for n in report.kept_fp32 if n in kinds).most_common())
    return converted, report


def _drop_cast_round_trips(model: onnx.ModelProto, kept_fp32: set[str]) -> None:
    """FP32 -> FP16 -> FP32 Cast pairs between two FP32-kept nodes: read the FP32 value directly.

    Why: the converter casts every kept node's output to FP16 and back for the next kept node, so a
    value that a run of kept nodes passes along (a residual stream kept FP32 because it leaves FP16's
    range) still overflows to inf in between, and each pair costs two Casts.
    """
    def to(node: onnx.NodeProto) -> int | None:
        return next((a.i for a in node.attribute if a.name == "to"), None) if node.op_type == "Cast" else None

    producer = {o: n for n in model.graph.node for o in n.output}
    outputs = {o.name for o in model.graph.output}
    replace: dict[str, str] = {}
    for node in model.graph.node:
        first = producer.get(node.input[0]) if node.input else None
        if to(node) != onnx.TensorProto.FLOAT or first is None or to(first) != onnx.TensorProto.FLOAT16:
            continue
        source = producer.get(first.input[0])
        if source is not None and (source.name in kept_fp32 or to(source) == onnx.TensorProto.FLOAT) \
                and node.output[0] not in outputs:
            replace[node.output[0]] = first.input[0]
    if not replace:
        return
    for node in model.graph.node:
        node.input[:] = [replace.get(i, i) for i in node.input]
    used = {i for n in model.graph.node for i in n.input} | outputs
    keep = [n for n in model.graph.node if n.op_type != "Cast" or any(o in used for o in n.output)]
    del model.graph.node[:]
    model.graph.node.extend(keep)


def _float_outputs(model: onnx.ModelProto) -> None:
    """keep_io_types: a graph output whose last node is kept FP32 (e.g. a classifier kept by
    --keep-float) comes out of the converter behind a Cast to FP16, typed FP16. Cast it to FP32."""
    producer = {o: n for n in model.graph.node for o in n.output}
    for output in model.graph.output:
        node = producer.get(output.name)
        if output.type.tensor_type.elem_type != onnx.TensorProto.FLOAT16 or node is None or node.op_type != "Cast":
            continue
        for attribute in node.attribute:
            if attribute.name == "to":
                attribute.i = onnx.TensorProto.FLOAT
        output.type.tensor_type.elem_type = onnx.TensorProto.FLOAT


def _silu_sigmoids(model: onnx.ModelProto) -> set[str]:
    """Sigmoids of SiLU activations, ``x * sigmoid(x)`` (every conv of a YOLO-style detector): an
    activation that runs in FP16 everywhere (TensorRT included), not an attention gate. Keeping them
    FP32 would put two Casts around every convolution."""
    producer_of = {out: n for n in model.graph.node for out in n.output}
    names = set()
    for node in model.graph.node:
        if node.op_type != "Mul":
            continue
        for mine, other in ((node.input[0], node.input[1]), (node.input[1], node.input[0])):
            sig = producer_of.get(mine)
            if sig is not None and sig.op_type == "Sigmoid" and sig.input[0] == other:
                names.add(sig.name)
    return names


def _casts_to_float32(node: onnx.NodeProto) -> bool:
    return any(a.name == "to" and a.i == onnx.TensorProto.FLOAT for a in node.attribute)


def _split_consumed_outputs(model: onnx.ModelProto) -> None:
    """A graph output that other nodes also read (e.g. an embedding fed to the head) gets its own
    Identity. Why: with keep_io_types the converter casts the output to FP32 under its original name,
    and the FP16 nodes reading that name then get FP32 (an ORT type error at load)."""
    consumed = {i for n in model.graph.node for i in n.input}
    for output in model.graph.output:
        if output.name not in consumed:
            continue
        internal = output.name + "_fp16_internal"
        for node in model.graph.node:
            node.output[:] = [internal if o == output.name else o for o in node.output]
            node.input[:] = [internal if i == output.name else i for i in node.input]
        model.graph.node.append(onnx.helper.make_node("Identity", [internal], [output.name], name=f"{output.name}_out"))


def _unshare_initializers(model: onnx.ModelProto, kept_fp32: set[str]) -> None:
    """Give FP32-kept nodes their own copy of any initializer that converted nodes read too.

    Why: exporters and onnxsim merge identical constants (a random-init network's folded biases are
    all zeros), so one initializer can feed both an FP16 conv and a kept-FP32 attention conv. The
    converter then keeps it FP32 for both, and ONNX Runtime refuses the FP16 conv at load
    ("bound to different types (float16 and float)").
    """
    initializers = {t.name: t for t in model.graph.initializer}
    readers: dict[str, set[bool]] = collections.defaultdict(set)
    for node in model.graph.node:
        for name in node.input:
            if name in initializers:
                readers[name].add(node.name in kept_fp32)
    shared = {name for name, kinds in readers.items() if kinds == {True, False}}
    for name in sorted(shared):
        copy = onnx.TensorProto()
        copy.CopyFrom(initializers[name])
        copy.name = f"{name}__fp32"
        model.graph.initializer.append(copy)
    for node in model.graph.node:
        if node.name in kept_fp32:
            node.input[:] = [f"{i}__fp32" if i in shared else i for i in node.input]
