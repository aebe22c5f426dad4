"""The attention's marginal cost, measured: the same export with its attention blocks bypassed.

Done on the ONNX graph, not in PyTorch, so that it needs no eager model (a user's network is never
rebuilt or imported) and times exactly the graph being profiled, minus the attention: every consumer
of a block's output reads the block's input instead (``y = cbam(x)`` becomes ``y = x``), and the nodes
left with no path to an output are dropped. The runtime then sees what a network without the
attention gives it, and fuses the residual Add and ReLU back into the convolution as it does for the
plain host. Shares: ``1 - t_bypassed / t_full``, both timed interleaved in the profile's own rounds.
"""

from __future__ import annotations

from typing import Collection

import onnx

from ..errors import UsageError
from .modules import AttentionMap


def _block_ends(model: onnx.ModelProto, attention: AttentionMap, block: str) -> tuple[str, str]:
    """(input tensor, output tensor) of one attention block, from the Muls that apply its gates."""
    graph = model.graph
    members = {n for n, (b, _) in attention.node_part.items() if b == block}
    producer = {o: n.name for n in graph.node for o in n.output}
    consumers: dict[str, list[str]] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n.name)
    graph_outputs = {o.name for o in graph.output}
    muls = [n for n in graph.node if n.name in set(attention.gate_muls.get(block, []))]
    inputs = {i for m in muls for i in m.input if producer.get(i) not in members}
    outputs = {o for m in muls for o in m.output
               if o in graph_outputs or any(c not in members for c in consumers.get(o, []))}
    if len(inputs) != 1 or len(outputs) != 1:
        raise UsageError(f"cannot bypass attention block {block}: its gates read {len(inputs)} outside tensor(s) "
                         f"and write {len(outputs)} (a block must map one feature map to one)")
    return inputs.pop(), outputs.pop()


def bypass_attention(model: onnx.ModelProto, attention: AttentionMap,
                     blocks: Collection[str] | None = None) -> onnx.ModelProto:
    """A copy of ``model`` in which each block in ``blocks`` (default: all) passes its input through."""
    chosen = list(attention.order if blocks is None else blocks)
    unknown = [b for b in chosen if b not in attention.order]
    if unknown:
        raise UsageError(f"no attention block {unknown[0]!r}; blocks: {', '.join(attention.order) or 'none'}")
    rename = dict(_block_ends(model, attention, b)[::-1] for b in chosen)  # output -> input
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    for node in graph.node:
        for k, name in enumerate(node.input):
            while name in rename:
                name = rename[name]
            node.input[k] = name
    for o in graph.output:
        if o.name in rename:  # a block writing a graph output: keep the output's name
            graph.node.append(onnx.helper.make_node("Identity", [rename[o.name]], [o.name], name=f"bypass_{o.name}"))
    _drop_dead(graph)
    return out


def _drop_dead(graph: onnx.GraphProto) -> None:
    """Remove nodes no graph output depends on, then initializers and value infos nothing uses."""
    nodes = list(graph.node)
    producer = {o: k for k, n in enumerate(nodes) for o in n.output}
    needed: set[str] = set()
    live: set[int] = set()
    stack = [o.name for o in graph.output]
    while stack:
        tensor = stack.pop()
        if tensor in needed:
            continue
        needed.add(tensor)
        k = producer.get(tensor)
        if k is not None and k not in live:
            live.add(k)
            stack.extend(i for i in nodes[k].input if i)
    keep = [onnx.NodeProto.FromString(n.SerializeToString()) for k, n in enumerate(nodes) if k in live]
    del graph.node[:]
    graph.node.extend(keep)
    inits = [t for t in graph.initializer if t.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(inits)
    infos = [v for v in graph.value_info if v.name in needed]
    del graph.value_info[:]
    graph.value_info.extend(infos)


def ablation_models(model: onnx.ModelProto, attention: AttentionMap, *, per_stage: bool) -> dict[str, bytes]:
    """Label -> serialized bypassed model: ``no attention`` and, with ``per_stage``, ``no attention in
    <stage>`` for each top-level module holding attention blocks."""
    models = {"no attention": bypass_attention(model, attention).SerializeToString()}
    if per_stage:
        stages: dict[str, list[str]] = {}
        for b in attention.order:
            stages.setdefault(b.split(".")[0], []).append(b)
        if len(stages) > 1:
            for stage, blocks in stages.items():
                models[f"no attention in {stage}"] = bypass_attention(model, attention, blocks).SerializeToString()
    return models
