"""The PyTorch module tree an ONNX graph came from, read from the graph itself (no PyTorch needed),
and the attention blocks in it, split into channel attention, spatial attention and gating.

Module paths come from what the exporters leave behind: the dynamo exporter's name scopes
(``pkg.torch.onnx.name_scopes``), the TorchScript exporter's node names (``/layer1/layer1.0/cbam/
channelattention/fc/fc.0/Conv``) and weight names (``layer1.0.conv1.weight``). A repeated call of a
module (``relu_1``, ``fc.0_1``) is the same module; the pairing of nodes to modules is
:func:`cbam_deploy.compare.graph_scopes.node_scopes`, the one localization uses.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

import onnx

from ..compare.graph_scopes import SCOPES_KEY, node_scopes
from ..precision.attention import find_attention_regions

_CALL = re.compile(r"^(.*)_(\d+)$")
_HEAVY = ("Conv", "ConvTranspose", "Gemm", "MatMul")
_GATE_ONLY = ("Sigmoid", "HardSigmoid", "Cast", "QuantizeLinear", "DequantizeLinear")  # a sigmoid module's ops


def _torchscript_paths(name: str) -> list[str]:
    """``/layer3/layer3.1/conv2/Conv`` -> ['layer3', 'layer3.1', 'layer3.1.conv2']."""
    if not name.startswith("/"):
        return []
    path, out = "", []
    for seg in name.split("/")[1:-1]:
        last = path.rsplit(".", 1)[-1]
        path = path + seg[len(last):] if path and seg.startswith(last + ".") else (f"{path}.{seg}" if path else seg)
        out.append(path)
    return out


def graph_modules(model: onnx.ModelProto) -> set[str]:
    """Module paths named in the graph; ``x_1`` is dropped where ``x`` is there too (a second call)."""
    raw: set[str] = set()
    for node in model.graph.node:
        scopes = next((p.value for p in node.metadata_props if p.key == SCOPES_KEY), None)
        if scopes is not None:
            try:
                raw.update(str(s) for s in ast.literal_eval(scopes)[1:-1])
            except (ValueError, SyntaxError):
                pass
        raw.update(_torchscript_paths(node.name))
    for init in model.graph.initializer:
        base = re.sub(r"(_quantized|_fp16)$", "", init.name)
        if base.endswith(".weight"):
            parts = base[: -len(".weight")].split(".")
            raw.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return {m for m in raw if m and not _repeated_call(m, raw)}


def _repeated_call(path: str, paths: set[str]) -> bool:
    head, _, last = path.rpartition(".")
    match = _CALL.match(last)
    if match is None:
        return False
    first = (head + "." if head else "") + match.group(1)
    return first in paths


@dataclass
class AttentionMap:
    """Every attention node of the source graph: its block and part (channel, spatial or gating)."""

    node_part: dict[str, tuple[str, str]] = field(default_factory=dict)  # node -> (block, part)
    parts: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # block -> part -> part modules
    order: list[str] = field(default_factory=list)  # blocks in graph order
    gate_muls: dict[str, list[str]] = field(default_factory=dict)  # block -> the Muls applying its gates


def _gate_kind(model: onnx.ModelProto, tensors: list[str]) -> dict[str, str]:
    """Tensor -> 'channel' (N x C x 1 x 1 or N x C) or 'spatial' (N x 1 x H x W), from shape inference
    on the graph without its large weights (their shapes stand in as inputs)."""
    graph = model.graph
    small = [t for t in graph.initializer if _numel(t) <= 64]
    big = [onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
           for t in graph.initializer if _numel(t) > 64]
    light = onnx.helper.make_graph(list(graph.node), "shapes", list(graph.input) + big, list(graph.output), small)
    copy = onnx.helper.make_model(light, opset_imports=model.opset_import)
    copy.ir_version = model.ir_version
    try:
        inferred = onnx.shape_inference.infer_shapes(copy)
    except Exception:  # unknown shapes are reported as an unknown kind, not a failure
        return {}
    kinds: dict[str, str] = {}
    wanted = set(tensors)
    for info in inferred.graph.value_info:
        if info.name not in wanted:
            continue
        dims = [d.dim_value if d.HasField("dim_value") else None for d in info.type.tensor_type.shape.dim]
        if len(dims) == 2 or (len(dims) == 4 and dims[2:] == [1, 1]):
            kinds[info.name] = "channel"
        elif len(dims) == 4 and dims[1] == 1:
            kinds[info.name] = "spatial"
    return kinds


def _numel(t: onnx.TensorProto) -> int:
    n = 1
    for d in t.dims:
        n *= d
    return n


def attention_map(model: onnx.ModelProto, scopes: dict[str, list[str]]) -> AttentionMap:
    """Find the sigmoid gates (``precision.attention``), the module each belongs to and the block."""
    graph = model.graph
    regions = find_attention_regions(_pass_through_view(model))
    by_name = {n.name: n for n in graph.node}
    owned: dict[str, list[str]] = {}
    for node in graph.node:
        for m in scopes.get(node.name, []):
            owned.setdefault(m, []).append(node.name)
    outputs = {n.name: n.output[0] for n in graph.node if n.output}
    kinds = _gate_kind(model, [outputs[r.gate] for r in regions])
    found = AttentionMap()
    part_of: dict[str, tuple[str, str]] = {}  # part module -> (block, kind)
    region_info = []
    for region in regions:
        chain = [m for m in scopes.get(region.gate, [])
                 if not all(by_name[n].op_type in _GATE_ONLY for n in owned.get(m, []))]
        kind = kinds.get(outputs[region.gate], "attention")
        region_info.append((region, chain[-1] if chain else None, kind))
    part_modules = [p for _, p, _ in region_info if p]
    region_nodes = {n for r, _, _ in region_info for n in r.nodes}
    gate_muls = _gate_muls(graph, region_info)
    for region, part, kind in region_info:
        if part is None:
            continue
        block = _block(part, part_modules, owned, by_name, region_nodes | set(gate_muls))
        part_of[part] = (block, kind)
        found.parts.setdefault(block, {}).setdefault(kind, [])
        if part not in found.parts[block][kind]:
            found.parts[block][kind].append(part)
    blocks = {b for b, _ in part_of.values()}
    for node in graph.node:
        chain = scopes.get(node.name, [])
        block_here = next((b for b in reversed(chain) if b in blocks), None)
        part_here = next((part_of[m] for m in reversed(chain) if m in part_of), None)
        if node.name in gate_muls:
            part = gate_muls[node.name]
            block = part_of[part][0] if part in part_of else block_here
            if block:
                found.node_part[node.name] = (block, "gating")
                found.gate_muls.setdefault(block, []).append(node.name)
        elif part_here is not None:
            found.node_part[node.name] = part_here
        elif node.name in region_nodes:
            owners = {(part_of[p][0], k) for r, p, k in region_info if p in part_of and node.name in r.nodes}
            blocks_here = {b for b, _ in owners}
            if len(blocks_here) == 1:
                found.node_part[node.name] = owners.pop() if len(owners) == 1 else (blocks_here.pop(), "gating")
        elif block_here is not None:
            found.node_part[node.name] = (block_here, "gating")
        if node.name in found.node_part and found.node_part[node.name][0] not in found.order:
            found.order.append(found.node_part[node.name][0])
    return found


def _pass_through_view(model: onnx.ModelProto) -> onnx.ModelProto:
    """The graph with casts and Q/DQ as Identity: an FP16 export casts the
    sigmoid's output before the gate Mul, an INT8 one may quantize it; the gate is the same gate."""
    nodes = []
    for n in model.graph.node:
        if n.op_type in ("Cast", "QuantizeLinear", "DequantizeLinear") and n.input:
            nodes.append(onnx.helper.make_node("Identity", [n.input[0]], list(n.output), name=n.name))
        else:
            nodes.append(n)
    graph = model.graph  # inputs, outputs and constants kept: the finder tells feature maps from constants
    return onnx.helper.make_model(onnx.helper.make_graph(nodes, "view", list(graph.input), list(graph.output),
                                                         list(graph.initializer)))


def _gate_muls(graph: onnx.GraphProto, region_info) -> dict[str, str | None]:
    """Mul nodes that apply a gate to a feature map -> the part module of that gate (None: unknown)."""
    producer = {o: n.name for n in graph.node for o in n.output}
    muls: dict[str, str | None] = {}
    for region, part, _ in region_info:
        inside = set(region.nodes)
        for node in graph.node:
            if node.op_type != "Mul" or node.name in inside:
                continue
            sources = [producer.get(i) for i in node.input]
            if any(s in inside for s in sources) and any(s not in inside for s in sources):
                muls.setdefault(node.name, part)
    return muls


def _block(part: str, parts: list[str], owned: dict[str, list[str]], by_name: dict[str, onnx.NodeProto],
           attention_nodes: set[str]) -> str:
    """The attention block of a part: its parent when the parent holds several parts and computes
    nothing heavy outside them (CBAM's ``cbam`` around ``channelattention`` and ``spatialattention``),
    else the part itself (an SE-style module with one gate)."""
    parent = part.rpartition(".")[0]
    if not parent or sum(1 for p in set(parts) if p.startswith(parent + ".")) < 2:
        return part
    for name in owned.get(parent, []):
        if name not in attention_nodes and by_name[name].op_type in _HEAVY:
            return part
    return parent


def scopes_for(model: onnx.ModelProto, modules: set[str] | None = None) -> dict[str, list[str]]:
    """Node -> module chain (outermost first), modules read from the graph unless given."""
    return node_scopes(model, modules if modules is not None else graph_modules(model))
