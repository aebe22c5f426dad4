"""Find attention gates in an ONNX graph, by pattern rather than by our module classes.

A gate is an activation into [0, 1] whose output multiplies a feature map: ``Sigmoid``,
``HardSigmoid`` (``nn.Hardsigmoid``), or ``relu6(x + 3) / 6`` (MobileNetV3's ``h_sigmoid``: ``Add 3``,
``Clip`` to [0, 6], then ``Div`` by 6 or ``Mul`` by 1/6). Between the gate and the ``Mul`` that applies
it may come view and broadcast ops (``Unsqueeze``, ``Expand``, ``Reshape``, ``Flatten``, ``Transpose``,
``Tile``, ``Squeeze``: the CBAM authors write ``sigmoid(s).unsqueeze(2).unsqueeze(3).expand_as(x)``),
Adds of constants or other gates (``x * (1 + sigmoid(...))``, ``x * ((1 + Mc) + Ms)``), and products
of gates (Coordinate Attention's ``x * (a_h * a_w)``; ``x * a_w * a_h`` applies each gate in turn).
Its attention region is every node on a path from the gated tensor ``x`` to the gate: ancestors of
the multiplier that are not ancestors of ``x``. That covers the pooling, the channel MLP (1x1 Conv,
Conv1d, or Gemm/MatMul behind a Flatten/Reshape), the channel-wise mean/max, the spatial convs,
SimAM's parameter-free energy (mean, variance) and the view ops, for any implementation.
``x * sigmoid(x)`` (SiLU) and ``x * relu6(x + 3) / 6`` (h_swish) are activations, not gates.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import numpy_helper

# Ops that only move, broadcast or retype the gate's values (Cast: an FP16 graph's boundaries); data is input 0.
_VIEW_OPS = frozenset({"Unsqueeze", "Squeeze", "Expand", "Reshape", "Flatten", "Transpose", "Tile", "Identity", "Cast"})


@dataclass
class AttentionRegion:
    gate: str  # the gate's activation node (Sigmoid, HardSigmoid, or h_sigmoid's Div/Mul)
    gated_tensor: str  # x in x * gate(...)
    nodes: list[str] = field(default_factory=list)  # node names, the gate's included
    kind: str = "sigmoid"  # "sigmoid" | "hard_sigmoid" (HardSigmoid or relu6(x + 3) / 6)
    gate_tensor: str = ""  # the tensor that multiplies x (the gate after views, Adds and products)


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


class _Graph:
    """The graph's index, its constant tensors (initializers, Constant nodes and what only they feed)."""

    def __init__(self, model: onnx.ModelProto):
        graph = model.graph
        self.nodes = list(graph.node)
        self.producer, self.consumers = _index(graph)
        self.values = {i.name: i for i in graph.initializer}
        self.const = set(self.values)
        for node in self.nodes:
            if node.op_type == "Constant" or (node.input and all(i in self.const or not i for i in node.input)
                                              and node.op_type not in ("Shape", "Size")):
                self.const.update(node.output)

    def uncast(self, tensor: str) -> str:
        """The tensor before any Cast/Identity (FP16 graphs cast at the borders of FP32 regions)."""
        node = self.producer.get(tensor)
        while node is not None and node.op_type in ("Cast", "Identity"):
            tensor = node.input[0]
            node = self.producer.get(tensor)
        return tensor

    def scalar(self, tensor: str) -> float | None:
        """A constant single-valued tensor's value (an initializer or a Constant node, maybe cast), else None."""
        if tensor in self.values:
            array = numpy_helper.to_array(self.values[tensor])
        else:
            node = self.producer.get(tensor)
            if node is not None and node.op_type == "Cast":  # an FP16 graph casts shared constants back
                return self.scalar(node.input[0])
            if node is None or node.op_type != "Constant" or not node.attribute:
                return None
            attr = node.attribute[0]
            if attr.name == "value":
                array = numpy_helper.to_array(attr.t)
            elif attr.name in ("value_float", "value_int"):
                array = np.array(onnx.helper.get_attribute_value(attr))
            else:
                return None
        return float(array.reshape(-1)[0]) if array.size == 1 else None


def _near(value: float | None, target: float) -> bool:
    return value is not None and abs(value - target) <= 1e-4 * max(1.0, abs(target))


def _clip_bounds(g: _Graph, node: onnx.NodeProto) -> tuple[float | None, float | None]:
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    low = g.scalar(node.input[1]) if len(node.input) > 1 and node.input[1] else attrs.get("min")
    high = g.scalar(node.input[2]) if len(node.input) > 2 and node.input[2] else attrs.get("max")
    return low, high


def _hard_sigmoid_source(g: _Graph, node: onnx.NodeProto) -> str | None:
    """x when ``node`` computes ``clip(x + 3, 0, 6) / 6`` (Div by 6 or Mul by 1/6), else None."""
    if node.op_type not in ("Div", "Mul") or len(node.input) != 2:
        return None
    for clipped, factor in ((node.input[0], node.input[1]), (node.input[1], node.input[0])):
        scale = g.scalar(factor)
        if not (_near(scale, 6.0) if node.op_type == "Div" else _near(scale, 1 / 6)):
            continue
        clip = g.producer.get(clipped)
        if clip is None or clip.op_type != "Clip" or _clip_bounds(g, clip) != (0.0, 6.0):
            continue
        add = g.producer.get(clip.input[0])
        if add is not None and add.op_type == "Add":
            for x, three in ((add.input[0], add.input[1]), (add.input[1], add.input[0])):
                if _near(g.scalar(three), 3.0):
                    return x
        if node.op_type == "Div" or clipped == node.input[0]:  # Div(_, 6): only input 0 is the dividend
            break
    return None


def _gate_heads(g: _Graph) -> list[tuple[onnx.NodeProto, str, str]]:
    """(node, its activation's input, kind) for every activation into [0, 1] a gate can be."""
    heads = []
    for node in g.nodes:
        if node.op_type == "Sigmoid":
            heads.append((node, node.input[0], "sigmoid"))
        elif node.op_type == "HardSigmoid":
            heads.append((node, node.input[0], "hard_sigmoid"))
        else:
            source = _hard_sigmoid_source(g, node)
            if source is not None:
                heads.append((node, source, "hard_sigmoid"))
    return heads


def _gate_valued(g: _Graph, heads: list[tuple[onnx.NodeProto, str, str]]) -> set[str]:
    """Tensors that still hold gate values: the heads' outputs, moved by view ops, shifted or scaled
    by constants, summed with or multiplied by other gates (graph order is topological)."""
    valued = {node.output[0] for node, _, _ in heads}
    for node in g.nodes:
        inputs = [i for i in node.input if i]
        if node.op_type in _VIEW_OPS and inputs and inputs[0] in valued:
            valued.add(node.output[0])
        elif node.op_type in ("Add", "Mul", "Div") and len(inputs) == 2 and inputs[0] in valued | g.const \
                and inputs[1] in valued | g.const and any(i in valued for i in inputs):
            valued.add(node.output[0])
    return valued


def find_attention_regions(model: onnx.ModelProto) -> list[AttentionRegion]:
    """Every gate that multiplies a feature map, with the nodes that compute it, in graph order."""
    g = _Graph(model)
    heads = _gate_heads(g)
    valued = _gate_valued(g, heads)
    regions = []
    for head, source, kind in heads:
        applied = _applications(g, head.output[0], valued)
        for multiplier, gated in applied:
            if multiplier == head.output[0] and g.uncast(gated) in _scaled_from(g, source):
                continue  # x * sigmoid(x), x * h_sigmoid(x), x * sigmoid(1.702 * x): an activation
            region = _ancestors(multiplier, g.producer) - _ancestors(gated, g.producer)
            order = [n.name for n in g.nodes if n.name in region]
            regions.append(AttentionRegion(head.name, gated, order, kind, multiplier))
            break  # one gate, one region: a gate applied twice is the same gate
    return regions


def _scaled_from(g: _Graph, tensor: str) -> set[str]:
    """``tensor`` and what it is computed from by scaling or shifting with constants (``1.702 * x``)."""
    found, current = set(), tensor
    for _ in range(4):
        current = g.uncast(current)
        found.add(current)
        node = g.producer.get(current)
        if node is None or node.op_type not in ("Mul", "Add", "Sub", "Div") or len(node.input) != 2:
            break
        variable = [i for i in node.input if i not in g.const]
        if len(variable) != 1:
            break
        current = variable[0]
    return found


def _applications(g: _Graph, start: str, valued: set[str]) -> list[tuple[str, str]]:
    """(multiplier, gated tensor) for each Mul that applies the gate from ``start`` to a feature map."""
    found, stack, seen = [], [start], set()
    while stack:
        tensor = stack.pop()
        if tensor in seen:
            continue
        seen.add(tensor)
        for user in g.consumers.get(tensor, []):
            if user.op_type in ("Shape", "Size"):  # reads only the gate's dimensions: not a use
                continue
            if user.output and user.output[0] in valued:
                stack.append(user.output[0])
            elif user.op_type == "Mul" and len(user.input) == 2:
                other = user.input[1] if user.input[0] == tensor else user.input[0]
                if other not in g.const:
                    found.append((tensor, other))
    return found


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
