"""Find CBAM-style attention in an ONNX graph, by pattern rather than by our module classes.

A gate is a ``Sigmoid`` whose output multiplies a feature map (``Mul(x, sigmoid(...))``), directly,
through view and broadcast ops (``Unsqueeze``, ``Expand``, ``Reshape``, ``Flatten``, ``Transpose``,
``Tile``, ``Squeeze``: the CBAM authors write ``sigmoid(s).unsqueeze(2).unsqueeze(3).expand_as(x)``)
or through a few Adds that combine gates (``x * ((1 + Mc) + Ms)``, as the ``parallel_gate_sum``
rewrite writes ``parallel``). Its attention region is every node on a path from the gated tensor
``x`` to the gate: ancestors of the multiplier that are not ancestors of ``x``. That covers the
pooling, the channel MLP (1x1 Conv, or Gemm/MatMul behind a Flatten/Reshape), the channel-wise
mean/max, the spatial convs, the Sigmoid and the view ops, for any CBAM implementation.
``x * sigmoid(x)`` (SiLU/Swish, everywhere in YOLO-style detectors) is an activation, not a gate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import onnx


_MAX_GATE_ADDS = 3
_MAX_GATE_STEPS = 8
# Ops that only move or broadcast the gate's values; their data input is input 0.
_VIEW_OPS = frozenset({"Unsqueeze", "Squeeze", "Expand", "Reshape", "Flatten", "Transpose", "Tile", "Identity"})


@dataclass
class AttentionRegion:
    gate: str  # the Sigmoid node's name
    gated_tensor: str  # x in x * sigmoid(...)
    nodes: list[str] = field(default_factory=list)  # node names, the Sigmoid included


def _index(graph: onnx.GraphProto):
    producer = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for inp in node.input:
            consumers.setdefault(inp, []).append(node)
    return producer, consumers


def _ancestors(tensor: str, producer: dict[str, onnx.NodeProto]) -> set[str]:
    seen: set[str] = set()
    stack = [tensor]
    while stack:
        node = producer.get(stack.pop())
        if node is None or node.name in seen:
            continue
        seen.add(node.name)
        stack.extend(node.input)
    return seen


def _multiplier(gate_out: str, consumers: dict[str, list[onnx.NodeProto]]) -> str:
    """The tensor the Mul reads: the gate after the view ops and gate-combining Adds that follow it."""
    current, adds = gate_out, 0
    for _ in range(_MAX_GATE_STEPS):
        # Shape/Size read only the gate's dimensions (e.g. for a flatten's target shape): not a use.
        users = [u for u in consumers.get(current, []) if u.op_type not in ("Shape", "Size")]
        if any(u.op_type == "Mul" for u in users) or len(users) != 1:
            break
        user = users[0]
        if user.op_type in _VIEW_OPS and user.input[0] == current:
            current = user.output[0]
        elif user.op_type == "Add" and adds < _MAX_GATE_ADDS:
            current, adds = user.output[0], adds + 1
        else:
            break
    return current


def find_attention_regions(model: onnx.ModelProto) -> list[AttentionRegion]:
    """Every sigmoid gate that multiplies a feature map, with the nodes that compute it."""
    graph = model.graph
    producer, consumers = _index(graph)
    regions = []
    for node in graph.node:
        if node.op_type != "Sigmoid":
            continue
        multiplier = _multiplier(node.output[0], consumers)
        muls = [c for c in consumers.get(multiplier, []) if c.op_type == "Mul"]
        gated = [i for m in muls for i in m.input if i != multiplier]
        if not gated or (multiplier == node.output[0] and set(gated) == {node.input[0]}):
            continue  # no Mul, or x * sigmoid(x): an activation
        region = _ancestors(multiplier, producer) - set().union(*(_ancestors(x, producer) for x in gated))
        order = [n.name for n in graph.node if n.name in region]
        regions.append(AttentionRegion(node.name, gated[0], order))
    return regions


def classifier_nodes(model: onnx.ModelProto) -> list[str]:
    """The final Gemm/MatMul producing a graph output (the classifier), if any."""
    outputs = {o.name for o in model.graph.output}
    producer, _ = _index(model.graph)
    names = []
    for out in outputs:
        node = producer.get(out)
        while node is not None and node.op_type in ("Add", "Reshape", "Flatten", "Identity"):
            node = next((producer[i] for i in node.input if i in producer), None)
        if node is not None and node.op_type in ("Gemm", "MatMul"):
            names.append(node.name)
    return names


def input_convs(model: onnx.ModelProto) -> list[str]:
    """Convolutions reading a graph input directly (the stem that sees raw pixels)."""
    inputs = {i.name for i in model.graph.input}
    return [n.name for n in model.graph.node if n.op_type == "Conv" and n.input and n.input[0] in inputs]
