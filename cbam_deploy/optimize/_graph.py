"""An index of one ONNX graph that the rewrites edit by node name: producers, consumers, constants,
shapes, fresh names; and where CBAM's sigmoid gates are, so a default rewrite can stay inside them."""

from __future__ import annotations

import collections

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..onnx_export.graph import ensure_node_names

# Ops between a gate's Sigmoid and the Mul that applies it, or between a gate's inputs and its Sigmoid.
_GATE_PATH_OPS = frozenset({"Unsqueeze", "Squeeze", "Expand", "Reshape", "Flatten", "Transpose", "Tile", "Identity",
                            "Add", "Concat", "Conv", "Relu", "BatchNormalization", "Gemm", "MatMul",
                            "GlobalAveragePool", "GlobalMaxPool", "ReduceMean", "ReduceMax"})
_VIEW_OPS = frozenset({"Unsqueeze", "Squeeze", "Expand", "Reshape", "Flatten", "Transpose", "Tile", "Identity"})
_GATE_DEPTH = 8


def _skeleton(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy for shape inference without the weights' bytes: a large initializer becomes a graph
    input of the same type and dims (all inference reads of it), small ones (shapes, axes, scalars)
    keep their values. On a ResNet-50 this saves copying ~100 MB for every rewrite tried."""
    graph = onnx.GraphProto(name=model.graph.name)
    for field in ("node", "input", "output", "value_info", "sparse_initializer"):
        getattr(graph, field).extend(getattr(model.graph, field))
    for t in model.graph.initializer:
        if t.ByteSize() > 4096:
            graph.input.append(onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
        else:
            graph.initializer.append(t)
    skeleton = onnx.ModelProto(ir_version=model.ir_version, graph=graph)
    skeleton.opset_import.extend(model.opset_import)
    return skeleton


class Graph:
    """Index of one ONNX graph: producers, consumers, constants; new names that do not collide."""

    def __init__(self, model: onnx.ModelProto) -> None:
        ensure_node_names(model)  # edits are keyed by node name
        self.model = model
        self.graph = model.graph
        self.inits = {t.name: t for t in self.graph.initializer}
        self.producer = {o: n for n in self.graph.node for o in n.output}
        self.consumers: dict[str, list[onnx.NodeProto]] = collections.defaultdict(list)
        for n in self.graph.node:
            for i in n.input:
                self.consumers[i].append(n)
        self.outputs = {o.name for o in self.graph.output}
        inferred = onnx.shape_inference.infer_shapes(_skeleton(model))
        self.shapes: dict[str, list[int | None]] = {}
        for v in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]:
            dims = v.type.tensor_type.shape.dim
            self.shapes[v.name] = [d.dim_value if d.HasField("dim_value") else None for d in dims]
        self._taken = ({n.name for n in self.graph.node} | set(self.inits) | {o for n in self.graph.node for o in n.output}
                       | {i.name for i in self.graph.input})
        self._counter = 0
        self.gates_only = False  # set for default runs: rewrite only inside CBAM's attention gates
        self.removed: set[str] = set()
        self.replacements: dict[str, list[onnx.NodeProto]] = {}

    def fresh(self, stem: str) -> str:
        """A node, value or initializer name not used anywhere in the graph yet."""
        while True:
            self._counter += 1
            name = f"cbam_opt/{stem}_{self._counter}"
            if name not in self._taken:
                self._taken.add(name)
                return name

    def constant(self, name: str) -> np.ndarray | None:
        if name in self.inits:
            return numpy_helper.to_array(self.inits[name])
        node = self.producer.get(name)
        if node is not None and node.op_type == "Constant":
            return numpy_helper.to_array(node.attribute[0].t)
        return None

    def add_initializer(self, stem: str, array: np.ndarray) -> str:
        name = self.fresh(stem)
        self.graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def single_use(self, name: str) -> bool:
        return len(self.consumers.get(name, [])) == 1 and name not in self.outputs

    def attr(self, node: onnx.NodeProto, name: str, default=None):
        for a in node.attribute:
            if a.name == name:
                return helper.get_attribute_value(a)
        return default

    def reduce_axes(self, node: onnx.NodeProto) -> list[int] | None:
        if len(node.input) > 1 and node.input[1]:
            axes = self.constant(node.input[1])
            return None if axes is None else [int(a) for a in axes.reshape(-1)]
        return self.attr(node, "axes")

    def gone(self, node: onnx.NodeProto) -> bool:
        """Already removed or replaced by an earlier match of this pass."""
        return node.name in self.removed or node.name in self.replacements

    def remove(self, *nodes: onnx.NodeProto) -> None:
        self.removed.update(n.name for n in nodes)

    def replace_node(self, old: onnx.NodeProto, new_nodes: list[onnx.NodeProto]) -> None:
        """``new_nodes`` go where ``old`` is (which keeps a topological order) when the pass finishes."""
        for node in new_nodes:  # compare/localize.py maps the new nodes to the module of the one replaced
            node.metadata_props.extend(p for p in old.metadata_props if p.key == "pkg.torch.onnx.name_scopes")
            node.metadata_props.add(key="cbam_deploy.replaces", value=old.name)
        self.replacements[old.name] = new_nodes

    def finish(self) -> None:
        """Apply the edits, then drop nodes and initializers nothing reads any more."""
        kept = []
        for n in self.graph.node:
            if n.name in self.replacements:
                kept.extend(self.replacements[n.name])
            elif n.name not in self.removed:
                kept.append(n)
        kept = [onnx.NodeProto.FromString(n.SerializeToString()) for n in kept]
        del self.graph.node[:]
        self.graph.node.extend(kept)
        while True:
            used = {i for n in self.graph.node for i in n.input} | self.outputs
            dead = [n for n in self.graph.node if n.output and not any(o in used for o in n.output)]
            if not dead:
                break
            for n in dead:
                self.graph.node.remove(n)
        used = {i for n in self.graph.node for i in n.input}
        for t in [t for t in self.graph.initializer if t.name not in used]:
            self.graph.initializer.remove(t)



    def feeds_gate(self, tensor: str) -> bool:
        """``tensor`` flows, within a few CBAM-gate ops, into a Sigmoid whose output multiplies a
        feature map: it is part of an attention gate's computation (pooling, MLP, channel mean/max)."""
        frontier, seen = [tensor], set()
        for _ in range(_GATE_DEPTH):
            following = []
            for name in frontier:
                for user in self.consumers.get(name, []):
                    if user.op_type == "Sigmoid" and self.is_gate(user.output[0], user.input[0]):
                        return True
                    if user.op_type in _GATE_PATH_OPS and user.name not in seen:
                        seen.add(user.name)
                        following.extend(user.output)
            frontier = following
        return False

    def is_gate(self, tensor: str, sigmoid_input: str) -> bool:
        """``tensor``, a Sigmoid's output, reaches (through view ops and Adds) a Mul with a feature map
        other than the Sigmoid's own input (``x * sigmoid(x)`` is SiLU, an activation)."""
        current = tensor
        for _ in range(_GATE_DEPTH):
            users = self.consumers.get(current, [])
            muls = [u for u in users if u.op_type == "Mul"]
            if any(i not in (current, sigmoid_input) for m in muls for i in m.input):
                return True
            views = [u for u in users if u.op_type in _VIEW_OPS | {"Add"}]  # Shape/Size users only read dims
            if len(views) != 1:
                return False
            current = views[0].output[0]
        return False

    def sigmoid_source(self, tensor: str) -> bool:
        """``tensor`` comes from a Sigmoid, through view ops only (the gate side of a Mul)."""
        node = self.producer.get(tensor)
        for _ in range(_GATE_DEPTH):
            if node is None:
                return False
            if node.op_type == "Sigmoid":
                return True
            if node.op_type not in _VIEW_OPS:
                return False
            node = self.producer.get(node.input[0])
        return False
