"""CBAM-aware rewrites of an exported ONNX graph, each small and separately testable.

They match ONNX patterns, not our module classes, so they apply to users' CBAM code too. Every
rewrite is exact algebra (up to float rounding); the export's parity check against eager proves
it on each model, and ``benchmarks/graph_optimization.py`` measures what each one buys.

- ``global_pooling``: ReduceMean/ReduceMax over H, W (keepdims) -> GlobalAveragePool/GlobalMaxPool.
  ONNX Runtime runs the global pools inside its blocked (NCHWc) layout; a Reduce* there forces a
  ReorderOutput back to NCHW in front of it.
- ``merged_channel_mlp``: the channel gate's two MLPs on the avg- and max-pooled vectors,
  ``Add(MLP_a(avg), MLP_b(max))`` with MLP = Conv1x1 -> Relu -> Conv1x1, become one MLP over the
  concatenated vectors: a 2-group Conv, Relu, and one Conv whose weights are [W2a | W2b] and whose
  bias is b2a + b2b (the final Add folded into it). Shared MLPs (original, parallel) and separate
  ones (dual_bn) alike: 5 nodes instead of 7, 2 convs instead of 4.
- ``parallel_gate_sum``: ``x + x*Mc + x*Ms`` -> ``x * ((1 + Mc) + Ms)``: two full-size
  elementwise ops instead of four.
- ``channel_mean_matmul``: ReduceMean over channels -> MatMul of a 1/C row with x viewed as
  N x C x HW: a GEMM instead of a strided reduction, in NCHW (no reorder).
- ``channel_mean_conv``: ReduceMean over channels -> a 1x1 Conv with weights 1/C (runs in the
  blocked layout, but needs reorders around it).

On by default: ``DEFAULT_REWRITES``, the ones measured to help, and each only where it earns its
place on the model at hand (inside CBAM gates, never growing the graph; see ``optimize_graph``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..errors import UsageError
from ..options import DEFAULT_REWRITES
from ._graph import Graph


def _rank(g: Graph, name: str) -> int | None:
    shape = g.shapes.get(name)
    return None if shape is None else len(shape)


def global_pooling(g: Graph) -> int:
    count = 0
    for node in list(g.graph.node):
        if node.op_type not in ("ReduceMean", "ReduceMax") or g.attr(node, "keepdims", 1) != 1 or g.gone(node):
            continue
        if g.gates_only and not g.feeds_gate(node.output[0]):
            continue
        rank = _rank(g, node.input[0])
        axes = g.reduce_axes(node)
        if rank != 4 or axes is None or sorted(a % 4 for a in axes) != [2, 3]:
            continue
        op = "GlobalAveragePool" if node.op_type == "ReduceMean" else "GlobalMaxPool"
        g.replace_node(node, [helper.make_node(op, [node.input[0]], list(node.output), name=g.fresh(op))])
        count += 1
    return count


@dataclass
class _Mlp:
    pooled: str
    conv1: onnx.NodeProto
    act: onnx.NodeProto
    conv2: onnx.NodeProto


def _conv_params(g: Graph, conv: onnx.NodeProto) -> tuple[np.ndarray, np.ndarray] | None:
    """(weight, bias) of a plain 1x1 convolution with constant weights, else None."""
    if conv.op_type != "Conv" or g.attr(conv, "group", 1) != 1:
        return None
    w = g.constant(conv.input[1])
    if w is None or w.ndim != 4 or w.shape[2:] != (1, 1):
        return None
    if any(p != 0 for p in g.attr(conv, "pads", [0, 0, 0, 0])) or any(s != 1 for s in g.attr(conv, "strides", [1, 1])):
        return None
    b = g.constant(conv.input[2]) if len(conv.input) > 2 and conv.input[2] else np.zeros(w.shape[0], w.dtype)
    return (w, b) if b is not None else None


def _mlp_feeding(g: Graph, name: str) -> _Mlp | None:
    conv2 = g.producer.get(name)
    if conv2 is None or _conv_params(g, conv2) is None or not g.single_use(conv2.output[0]):
        return None
    act = g.producer.get(conv2.input[0])
    if act is None or act.op_type != "Relu" or not g.single_use(act.output[0]):
        return None
    conv1 = g.producer.get(act.input[0])
    if conv1 is None or _conv_params(g, conv1) is None or not g.single_use(conv1.output[0]):
        return None
    shape = g.shapes.get(conv1.input[0])
    if shape is None or len(shape) != 4 or shape[2:] != [1, 1]:
        return None
    return _Mlp(conv1.input[0], conv1, act, conv2)


def merged_channel_mlp(g: Graph) -> int:
    count = 0
    for add in list(g.graph.node):
        if add.op_type != "Add" or len(add.input) != 2 or g.gone(add) or (g.gates_only and not g.feeds_gate(add.output[0])):
            continue
        a, b = _mlp_feeding(g, add.input[0]), _mlp_feeding(g, add.input[1])
        if a is None or b is None or a.conv1.name == b.conv1.name or any(
                g.gone(n) for n in (a.conv1, a.act, a.conv2, b.conv1, b.act, b.conv2)):
            continue
        (w1a, b1a), (w1b, b1b) = _conv_params(g, a.conv1), _conv_params(g, b.conv1)
        (w2a, b2a), (w2b, b2b) = _conv_params(g, a.conv2), _conv_params(g, b.conv2)
        if w1a.shape != w1b.shape or w2a.shape != w2b.shape:
            continue
        concat, hidden, act = g.fresh("pooled_concat"), g.fresh("mlp_hidden"), g.fresh("mlp_act")
        w1 = g.add_initializer("mlp_w1", np.concatenate([w1a, w1b], axis=0))
        bias1 = g.add_initializer("mlp_b1", np.concatenate([b1a, b1b]))
        w2 = g.add_initializer("mlp_w2", np.concatenate([w2a, w2b], axis=1))
        bias2 = g.add_initializer("mlp_b2", b2a + b2b)
        g.replace_node(add, [
            helper.make_node("Concat", [a.pooled, b.pooled], [concat], axis=1, name=g.fresh("Concat")),
            helper.make_node("Conv", [concat, w1, bias1], [hidden], group=2, kernel_shape=[1, 1], name=g.fresh("Conv")),
            helper.make_node("Relu", [hidden], [act], name=g.fresh("Relu")),
            helper.make_node("Conv", [act, w2, bias2], list(add.output), kernel_shape=[1, 1], name=g.fresh("Conv")),
        ])
        g.remove(a.conv1, a.act, a.conv2, b.conv1, b.act, b.conv2)
        count += 1
    return count


def _gate_product(g: Graph, name: str, x: str) -> tuple[str, str] | None:
    """``name`` = Mul(x, gate) (either order), single use: (x, gate)."""
    node = g.producer.get(name)
    if node is None or node.op_type != "Mul" or not g.single_use(name):
        return None
    u, v = node.input
    if u == x:
        return x, v
    if v == x:
        return x, u
    return None


def parallel_gate_sum(g: Graph) -> int:
    """Add(Add(x, Mul(x, A)), Mul(x, B)) in any operand order -> Mul(x, Add(Add(A, 1), B))."""
    count = 0
    for outer in list(g.graph.node):
        if outer.op_type != "Add" or g.gone(outer):
            continue
        for inner_name, mul_b in (outer.input, outer.input[::-1]):
            inner = g.producer.get(inner_name)
            if inner is None or inner.op_type != "Add" or not g.single_use(inner_name) or g.gone(inner):
                continue
            match = None
            for x, mul_a in (inner.input, inner.input[::-1]):
                first, second = _gate_product(g, mul_a, x), _gate_product(g, mul_b, x)
                if first and second:
                    match = (x, first[1], second[1], mul_a)
                    break
            if match is None:
                continue
            x, gate_a, gate_b, mul_a = match
            if g.gates_only and not (g.sigmoid_source(gate_a) and g.sigmoid_source(gate_b)):
                continue
            shape_x, shape_a, shape_b = g.shapes.get(x), g.shapes.get(gate_a), g.shapes.get(gate_b)
            if not shape_x or not shape_a or not shape_b or len(shape_x) != 4:
                continue
            small, other = (gate_a, gate_b) if shape_a[2:] == [1, 1] else (gate_b, gate_a)
            one = g.add_initializer("one", np.array(1.0, dtype=np.float32))  # the pass runs on FP32 graphs
            plus_one, total = g.fresh("gate_plus_one"), g.fresh("gate_sum")
            g.replace_node(outer, [
                helper.make_node("Add", [small, one], [plus_one], name=g.fresh("Add")),
                helper.make_node("Add", [plus_one, other], [total], name=g.fresh("Add")),
                helper.make_node("Mul", [x, total], list(outer.output), name=g.fresh("Mul")),
            ])
            g.remove(inner, g.producer[mul_a], g.producer[mul_b])
            count += 1
            break
    return count


def _channel_means(g: Graph):
    """(node, x, C) for each ReduceMean over the channels of a 4-D x with a known channel count."""
    for node in list(g.graph.node):
        if node.op_type != "ReduceMean" or g.attr(node, "keepdims", 1) != 1 or g.gone(node):
            continue
        if g.gates_only and not g.feeds_gate(node.output[0]):
            continue
        shape = g.shapes.get(node.input[0])
        axes = g.reduce_axes(node)
        if shape and len(shape) == 4 and axes is not None and [a % 4 for a in axes] == [1] and shape[1] is not None:
            yield node, node.input[0], shape[1]


def channel_mean_conv(g: Graph) -> int:
    count = 0
    for node, x, channels in _channel_means(g):
        weight = g.add_initializer("channel_mean_w", np.full((1, channels, 1, 1), 1.0 / channels, np.float32))
        g.replace_node(node, [helper.make_node("Conv", [x, weight], list(node.output), kernel_shape=[1, 1],
                                               name=g.fresh("Conv"))])
        count += 1
    return count


def _opset(g: Graph) -> int:
    return next((o.version for o in g.model.opset_import if o.domain in ("", "ai.onnx")), 0)


def channel_mean_matmul(g: Graph) -> int:
    """ReduceMean over channels -> MatMul(1/C row, x viewed as N x C x HW): a GEMM instead of a
    strided reduction, still in NCHW (no reorder), dynamic batch and size kept. 5 nodes for 1
    (opset >= 15, ``Shape(start=2)``), 7 before."""
    count = 0
    for node, x, channels in _channel_means(g):
        row = g.add_initializer("channel_mean_row", np.full((1, channels), 1.0 / channels, np.float32))
        flat_shape = g.add_initializer("flat_shape", np.array([0, 0, -1], np.int64))
        flat, summed, target, hw_dims = g.fresh("flat"), g.fresh("channel_mean_flat"), g.fresh("mean_shape"), g.fresh("hw")
        if _opset(g) >= 15:
            # Reshape's 0 copies the batch from N x 1 x HW, so only H, W come from x's shape.
            keep_n_one = g.add_initializer("n_one", np.array([0, 1], np.int64))
            shape_nodes = [helper.make_node("Shape", [x], [hw_dims], start=2, name=g.fresh("Shape")),
                           helper.make_node("Concat", [keep_n_one, hw_dims], [target], axis=0, name=g.fresh("Concat"))]
        else:
            dims = g.fresh("dims")
            starts2, ends4 = g.add_initializer("s2", np.array([2], np.int64)), g.add_initializer("e4", np.array([4], np.int64))
            keep_n_one = g.add_initializer("n_one", np.array([0, 1], np.int64))
            shape_nodes = [helper.make_node("Shape", [x], [dims], name=g.fresh("Shape")),
                           helper.make_node("Slice", [dims, starts2, ends4], [hw_dims], name=g.fresh("Slice")),
                           helper.make_node("Concat", [keep_n_one, hw_dims], [target], axis=0, name=g.fresh("Concat"))]
        g.replace_node(node, [
            helper.make_node("Reshape", [x, flat_shape], [flat], name=g.fresh("Reshape")),
            helper.make_node("MatMul", [row, flat], [summed], name=g.fresh("MatMul")),
            *shape_nodes,
            helper.make_node("Reshape", [summed, target], list(node.output), name=g.fresh("Reshape")),
        ])
        count += 1
    return count


REWRITES: dict[str, Callable[[Graph], int]] = {
    "channel_mean_matmul": channel_mean_matmul,
    "global_pooling": global_pooling,
    "merged_channel_mlp": merged_channel_mlp,
    "parallel_gate_sum": parallel_gate_sum,
    "channel_mean_conv": channel_mean_conv,
}
# What --optimize applies by default (options.DEFAULT_REWRITES, one source), and only where it earns
# its place (``optimize_graph``'s ``guarded``): parallel_gate_sum removes full-size elementwise ops
# and was measured to help (6 % at batch 1). channel_mean_matmul measured 3-5 % faster at batch 1
# in ONNX Runtime CPU only (neutral at batch 8, unmeasured on TensorRT) but adds 4 nodes per gate
# (64 on a timm ResNet-50): by name only, like global_pooling, merged_channel_mlp and
# channel_mean_conv (neutral or worse).


@dataclass
class OptimizeReport:
    applied: dict[str, int] = field(default_factory=dict)  # rewrite -> matches rewritten
    nodes_added: dict[str, int] = field(default_factory=dict)  # rewrite -> node count change (negative: removed)
    skipped: dict[str, str] = field(default_factory=dict)  # rewrite -> why it was not applied (guarded runs)

    def to_dict(self) -> dict[str, object]:
        return {"rewrites": self.applied, "nodes_added": self.nodes_added, "skipped": self.skipped}


def optimize_graph(model: onnx.ModelProto, rewrites: tuple[str, ...] | list[str] = DEFAULT_REWRITES, *,
                   guarded: bool | None = None) -> tuple[onnx.ModelProto, OptimizeReport]:
    """Apply ``rewrites`` in order to a copy of an FP32 model; the result is checked by onnx.checker.

    ``guarded`` (default: when ``rewrites`` are the defaults) makes each rewrite earn its place on
    this model: it only touches nodes of a CBAM attention gate (a Sigmoid that multiplies a feature
    map), and one that would grow the graph is not applied (``report.skipped`` says so). Rewrites
    named explicitly apply wherever their pattern matches.
    """
    unknown = [r for r in rewrites if r not in REWRITES]
    if unknown:
        raise UsageError(f"unknown rewrite(s) {', '.join(unknown)}; valid: {', '.join(REWRITES)}")
    if guarded is None:
        guarded = tuple(rewrites) == tuple(DEFAULT_REWRITES)
    report = OptimizeReport()
    original = model
    for name in rewrites:
        candidate = onnx.ModelProto.FromString(model.SerializeToString())  # rewrites edit in place
        g = Graph(candidate)
        g.gates_only = guarded
        count = REWRITES[name](g)
        if count == 0:  # nothing matched: keep the graph as it was (no copy, no re-check)
            report.applied[name], report.nodes_added[name] = 0, 0
            continue
        g.finish()
        growth = len(candidate.graph.node) - len(model.graph.node)
        if guarded and growth > 0:
            report.skipped[name] = f"would add {growth} nodes for {count} matches"
            continue
        model = candidate
        report.applied[name], report.nodes_added[name] = count, growth
    if model is not original:  # the input was checked by the caller's check stage
        onnx.checker.check_model(model, full_check=True)
    return model, report
