"""Which PyTorch module each ONNX node belongs to, and which tensors leave each module.

The module path of a node comes from, in order of trust:

1. the dynamo exporter's node metadata (``pkg.torch.onnx.name_scopes``: ``['', 'layer3', 'layer3.1',
   'layer3.1.conv2', 'conv2d_7']``), kept through simplification by the export;
2. the TorchScript exporter's node names (``/layer3/layer3.1/conv2/Conv``; a second call of a
   shared module gets ``fc.0_1``);
3. the node a CBAM rewrite replaced (``cbam_deploy.replaces`` metadata on the nodes it created);
4. the weight a Conv/Gemm/MatMul reads (``layer3.1.conv2.weight``; through DequantizeLinear and
   the ``_quantized`` suffix of INT8 weights). Biases are not used: the simplifier shares equal
   initializers (all-zero biases) between layers.

Nodes that match none (casts, Q/DQ pairs, top-level functional code) belong to no module.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import Collection

import onnx

SCOPES_KEY = "pkg.torch.onnx.name_scopes"
REPLACES_KEY = "cbam_deploy.replaces"
_CALL_SUFFIX = re.compile(r"(_\d+|@\d+)$")
_WEIGHT_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


def _resolve(name: str, modules: Collection[str]) -> str | None:
    """``name`` or, for a repeated call (``fc.0_1``, ``relu@1``), the module it repeats; a wrapper's
    prefix (``model.layer3.1`` exported through an output-flattening wrapper) is dropped."""
    for candidate in (name, _CALL_SUFFIX.sub("", name)):
        if candidate in modules:
            return candidate
        head, _, rest = candidate.partition(".")
        if rest and head not in modules and rest in modules:
            return rest
    return None


def _from_metadata(node: onnx.NodeProto, modules: Collection[str]) -> list[str] | None:
    for prop in node.metadata_props:
        if prop.key == SCOPES_KEY:
            try:
                scopes = ast.literal_eval(prop.value)  # a Python list literal of strings
            except (ValueError, SyntaxError):
                return None
            found = [_resolve(str(s), modules) for s in scopes[1:-1]]
            return [s for s in found if s]
    return None


def _from_torchscript_name(name: str, modules: Collection[str]) -> list[str] | None:
    """``/layer3/layer3.1/conv2/Conv`` -> ['layer3', 'layer3.1', 'layer3.1.conv2']."""
    if not name.startswith("/"):
        return None
    path, chain = "", []
    for seg in name.split("/")[1:-1]:
        last = path.rsplit(".", 1)[-1]
        # A Sequential child is written 'parent.index' ('layer3.1' under 'layer3'); in nested Sequentials,
        # by its whole path ('layers.0.0' under 'layers.0').
        if path and seg.startswith(path + "."):
            full = seg
        else:
            full = path + seg[len(last):] if path and seg.startswith(last + ".") else (f"{path}.{seg}" if path else seg)
        resolved = _resolve(full, modules)
        if resolved is None:
            if not chain:  # a wrapper around the user's model ('/model/layer3/...'): skip it
                continue
            return chain
        path = resolved
        chain.append(resolved)
    return chain or None


def _weight_module(node: onnx.NodeProto, producer: dict[str, onnx.NodeProto], initializers: Collection[str],
                   modules: Collection[str]) -> str | None:
    if node.op_type not in _WEIGHT_OPS or len(node.input) < 2:
        return None
    weight = node.input[1]
    dq = producer.get(weight)
    if dq is not None and dq.op_type == "DequantizeLinear":
        weight = dq.input[0]
    if weight not in initializers:
        return None
    base = re.sub(r"(_quantized|_fp16)$", "", weight)
    if not base.endswith(".weight"):
        return None
    return _resolve(base[: -len(".weight")], modules)


def _ancestors(path: str, modules: Collection[str]) -> list[str]:
    parts = path.split(".")
    return [p for p in (".".join(parts[:i]) for i in range(1, len(parts) + 1)) if p in modules]


def node_scopes(model: onnx.ModelProto, modules: Collection[str]) -> dict[str, list[str]]:
    """Node name -> module paths that contain it, outermost first (empty: no module)."""
    graph = model.graph
    producer = {o: n for n in graph.node for o in n.output}
    initializers = {t.name for t in graph.initializer}
    by_name = {n.name: n for n in graph.node}
    scopes: dict[str, list[str]] = {}

    def scope_of(node: onnx.NodeProto, depth: int = 0) -> list[str]:
        chain = _from_metadata(node, modules)
        if chain is None:
            chain = _from_torchscript_name(node.name, modules)
        if chain is None and depth < 4:
            replaced = next((p.value for p in node.metadata_props if p.key == REPLACES_KEY), None)
            if replaced is not None:
                old = by_name.get(replaced) or onnx.helper.make_node("Identity", [], [], name=replaced)
                chain = scope_of(old, depth + 1) or None
        weight = _weight_module(node, producer, initializers, modules)
        if weight is not None and not chain:
            # Known only by its weight (a graph without scopes or node names): the node belongs to that
            # leaf module alone. Its containers would own their convs and nothing else, so their
            # "outputs" would be conv outputs compared with whole blocks' outputs: a false culprit.
            chain = [weight]
        elif weight is not None and chain[-1] != weight:
            chain = _ancestors(weight, modules)
        return chain or []

    for node in graph.node:
        scopes[node.name] = scope_of(node)
    return scopes


@dataclass
class ModuleTensors:
    """The tensors a module's nodes read from outside it and write for outside it, in graph order."""

    module: str
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    ops: list[str] = field(default_factory=list)


def module_tensors(model: onnx.ModelProto, scopes: dict[str, list[str]]) -> dict[str, ModuleTensors]:
    """For every module that owns nodes: its boundary inputs and outputs (constants excluded)."""
    graph = model.graph
    constants = {t.name for t in graph.initializer} | {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    graph_outputs = {o.name for o in graph.output}
    members: dict[str, set[str]] = {}
    for node in graph.node:
        for module in scopes.get(node.name, []):
            members.setdefault(module, set()).add(node.name)
    consumers: dict[str, list[str]] = {}
    for node in graph.node:
        for i in node.input:
            consumers.setdefault(i, []).append(node.name)
    found: dict[str, ModuleTensors] = {m: ModuleTensors(m) for m in members}
    producer_module: dict[str, list[str]] = {}
    for node in graph.node:
        for o in node.output:
            producer_module[o] = scopes.get(node.name, [])
    for node in graph.node:
        for module in scopes.get(node.name, []):
            inside, entry = members[module], found[module]
            entry.ops.append(node.op_type)
            for i in node.input:
                if i and i not in constants and module not in producer_module.get(i, []) and i not in entry.inputs:
                    entry.inputs.append(i)
            for o in node.output:
                if o in graph_outputs or any(c not in inside for c in consumers.get(o, [])):
                    entry.outputs.append(o)
    return found


def exposed_bytes(model: onnx.ModelProto, tensors: Collection[str]) -> bytes:
    """``model`` serialized with ``tensors`` added as graph outputs; ``model`` itself is left as it was.

    The outputs carry no type: ONNX Runtime takes it from the graph (FP16 stays FP16), and skipping
    shape inference and a copy of the proto saves seconds on a ResNet-50.
    """
    existing = {o.name for o in model.graph.output} | {i.name for i in model.graph.input}
    added = [name for name in dict.fromkeys(tensors) if name not in existing]
    before = len(model.graph.output)
    try:
        model.graph.output.extend(onnx.ValueInfoProto(name=name) for name in added)
        return model.SerializeToString()
    finally:
        del model.graph.output[before:]
