"""Which PyTorch module each node that ran is charged to: the attribution rule.

The rule, in the order it is applied (also printed with every profile, :data:`RULE`):

1. **Own nodes.** A node of the exported graph, or one the runtime fused from several (an NCHWc
   convolution named ``<tensor>_nchwc``, a convolution with its activation and residual sum folded
   in), belongs to the module of its anchor: the convolution/GEMM among the nodes it absorbed, else
   the node that wrote its output. Attention nodes are split into the block's channel attention,
   spatial attention and gating (the Mul that applies a gate, and glue such as ``1 + Mc + Ms``).
2. **Epilogues the attention un-fused.** An elementwise node (Add, Relu, Clip, ...) that reads a
   gated feature map, directly or through other such nodes and conversions, is charged to that
   block's gating: without the attention, the runtime folds the residual Add and ReLU into the
   preceding convolution (plain ResNet-50 on ONNX Runtime CPU runs no Add or Relu node at all).
3. **Conversions.** Layout reorders, Q/DQ, casts and copies the runtime runs belong to the compute
   node they serve: a conversion *out of* the runtime's format (``ReorderOutput``,
   ``DequantizeLinear``, ``MemcpyFromHost``, ``Cast``) to the node that reads its result, a conversion
   *into* it (``ReorderInput``, ``QuantizeLinear``, ``MemcpyToHost``) to the node that wrote its input,
   through chains of conversions. Among several readers, an attention node wins: the conversion
   exists for it (the rest of the network stays in the runtime's format). Conversions serving no
   attention are runtime overhead of their module.
4. Time between kernels is charged to the kernel that follows it; time before the first and after
   the last kernel of a run stays unattributed (session overhead).
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx

from .modules import AttentionMap

RULE = ("own nodes -> their module (fused nodes -> the convolution they absorbed); an Add/Relu that reads a "
        "gated feature map -> that attention block's gating (without attention the runtime fuses it into the "
        "convolution); reorders, Q/DQ, casts and copies -> the node they convert for (attention first); time "
        "between kernels -> the next kernel")

INTO_RUNTIME = frozenset({"ReorderInput", "QuantizeLinear", "MemcpyToHost"})
OUT_OF_RUNTIME = frozenset({"ReorderOutput", "DequantizeLinear", "MemcpyFromHost", "Cast"})
BOTH_SIDES = frozenset({"Reorder", "Convert"})  # OpenVINO's: either direction, read from the graph
CONVERSIONS = INTO_RUNTIME | OUT_OF_RUNTIME | BOTH_SIDES
EPILOGUE = frozenset({"Add", "Sum", "Relu", "Clip", "LeakyRelu", "Elu", "HardSwish"})
_ANCHORS = ("Conv", "ConvTranspose", "Gemm", "MatMul", "FusedConv", "QLinearConv", "ConvInteger", "NhwcConv")
ATTENTION_PARTS = ("channel", "spatial", "attention", "gating")


@dataclass
class Attribution:
    """Where one executed node's time goes."""

    module: str  # PyTorch dotted path ('' when no module: top-level functional code, runtime)
    part: str  # 'conv' | 'other' | 'channel' | 'spatial' | 'attention' | 'gating'
    block: str | None = None  # the attention block, for attention parts
    rule: str = "own"  # 'own' | 'fused' | 'unfused epilogue' | 'conversion' | 'runtime'
    conversion: bool = False

    @property
    def is_attention(self) -> bool:
        return self.block is not None and self.part in ATTENTION_PARTS


class _Source:
    """The exported graph: names, producers, and which of its nodes each optimized node stands for."""

    def __init__(self, model: onnx.ModelProto, materialized: set[str], attention: set[str] = frozenset()) -> None:
        graph = model.graph
        self.nodes = {n.name: n for n in graph.node}
        self.producer = {o: n for n in graph.node for o in n.output}
        self.constants = {t.name for t in graph.initializer} | {i.name for i in graph.input}
        self.materialized = materialized
        self.attention = attention

    def origin(self, name: str, outputs: list[str], fused_from: list[str] = ()) -> tuple[str | None, str]:
        """(source node, 'own' | 'fused') for a node of the graph that ran; ``fused_from``: the source
        nodes a runtime says it fused into it (OpenVINO's ``originalLayersNames``)."""
        if name in self.nodes and not fused_from:
            return name, "own"
        known = [self.nodes[n] for n in fused_from if n in self.nodes]
        if known:  # a convolution; else an attention node (the fused eltwise chain exists for it); else the last
            anchor = next((n for n in known if n.op_type in _ANCHORS),
                          next((n for n in known if n.name in self.attention), known[-1]))
            return anchor.name, "fused" if len(known) > 1 else "own"
        if name in self.nodes:
            return name, "own"
        stems = ([name[: -len("_nchwc")]] if name.endswith("_nchwc") else []) + list(outputs) + [name]
        for tensor in stems:
            node = self.producer.get(tensor)
            if node is not None:
                return self.anchor(node).name, "fused"
        best = max((n for n in self.nodes if n and name.startswith(n)), key=len, default=None)
        return (best, "fused") if best else (None, "runtime")

    def anchor(self, node: onnx.NodeProto) -> onnx.NodeProto:
        """The convolution/GEMM among the nodes fused into the one that wrote ``node``'s output."""
        seen, frontier = [node], [node]
        for _ in range(6):
            nxt = []
            for n in frontier:
                if n.op_type in _ANCHORS:
                    return n
                for i in n.input:
                    p = self.producer.get(i)
                    if p is not None and i not in self.constants and not self._is_materialized(i) and p not in seen:
                        seen.append(p)
                        nxt.append(p)
            frontier = nxt
        return node

    def _is_materialized(self, tensor: str) -> bool:
        return tensor in self.materialized or (tensor + "_nchwc") in self.materialized


def attribute(source: onnx.ModelProto, scopes: dict[str, list[str]], attention: AttentionMap,
              ran: list[tuple[str, str, list[str], list[str]]],
              fused_from: dict[str, list[str]] | None = None) -> dict[str, Attribution]:
    """Executed node name -> attribution. ``ran``: the graph that ran, as (name, op type, inputs,
    outputs) in execution order (ONNX Runtime's optimized graph; for runtimes whose layers keep the
    exported names, the exported graph itself). ``fused_from``: layer -> the exported nodes fused into it."""
    fused_from = fused_from or {}
    materialized = {n for n, _, _, _ in ran} | {t for _, _, ins, outs in ran for t in (*ins, *outs)}
    src = _Source(source, materialized, set(attention.node_part))
    producer = {o: n for n, _, _, outs in ran for o in outs if o}
    consumers: dict[str, list[str]] = {}
    for n, _, ins, _ in ran:
        for i in ins:
            consumers.setdefault(i, []).append(n)
    ops = {n: op for n, op, _, _ in ran}
    edges = {n: (ins, outs) for n, _, ins, outs in ran}
    found: dict[str, Attribution] = {}
    for name, op, ins, outs in ran:
        if op in CONVERSIONS:
            continue
        origin, how = src.origin(name, outs, fused_from.get(name, []))
        found[name] = _own(origin, how, op, src, scopes, attention)
    _unfused_epilogues(ran, found, producer, ops)
    for name, op, _, _ in ran:
        if op in CONVERSIONS:
            found[name] = _conversion(name, found, producer, consumers, ops, edges)
    return found


def _own(origin: str | None, how: str, op: str, src: _Source, scopes: dict[str, list[str]],
         attention: AttentionMap) -> Attribution:
    if origin is None:
        return Attribution("", "other", rule="runtime")
    chain = scopes.get(origin, [])
    module = chain[-1] if chain else ""
    if origin in attention.node_part:
        block, part = attention.node_part[origin]
        return Attribution(module or block, part, block, how)
    source_op = src.nodes[origin].op_type if origin in src.nodes else op
    return Attribution(module, "conv" if source_op in _ANCHORS or op in _ANCHORS else "other", rule=how)


def _through_conversions(tensor: str, producer: dict[str, str], ops: dict[str, str], edges) -> str | None:
    node = producer.get(tensor)
    for _ in range(8):
        if node is None or ops[node] not in CONVERSIONS:
            return node
        ins = [i for i in edges[node][0] if i]
        node = producer.get(ins[0]) if ins else None
    return node


def _unfused_epilogues(ran, found: dict[str, Attribution], producer, ops) -> None:
    edges = {n: (ins, outs) for n, _, ins, outs in ran}
    for name, op, ins, _ in ran:
        if op not in EPILOGUE or found[name].is_attention:
            continue
        for i in ins:
            src = _through_conversions(i, producer, ops, edges)
            a = found.get(src) if src else None
            if a is not None and a.block is not None and a.part == "gating":
                found[name] = Attribution(a.block, "gating", a.block, "unfused epilogue")
                break


def _conversion(name: str, found: dict[str, Attribution], producer, consumers, ops, edges) -> Attribution:
    """Follow a conversion to the compute nodes on its far side; an attention node among them wins."""
    ins, outs = edges[name]
    if ops[name] in BOTH_SIDES:
        candidates = (_served(name, "consumer", producer, consumers, ops, edges)
                      + _served(name, "producer", producer, consumers, ops, edges))
    else:
        side = "producer" if ops[name] in INTO_RUNTIME else "consumer"
        candidates = _served(name, side, producer, consumers, ops, edges)
    if not candidates and ops[name] not in BOTH_SIDES:  # a graph input/output on that side: the other side then
        candidates = _served(name, "consumer" if side == "producer" else "producer", producer, consumers, ops, edges)
    chosen = next((found[c] for c in candidates if c in found and found[c].is_attention), None)
    if chosen is None:
        chosen = next((found[c] for c in candidates if c in found), None)
    if chosen is None:
        return Attribution("", "other", rule="conversion", conversion=True)
    return Attribution(chosen.module, chosen.part, chosen.block, "conversion", conversion=True)


def _served(name: str, side: str, producer, consumers, ops, edges) -> list[str]:
    out, frontier, seen = [], [name], {name}
    for _ in range(8):
        nxt = []
        for n in frontier:
            ins, outs = edges[n]
            if side == "producer":
                near = [producer[i] for i in ins if i in producer]
            else:
                near = [c for o in outs for c in consumers.get(o, [])]
            for m in near:
                if m in seen:
                    continue
                seen.add(m)
                (nxt if ops[m] in CONVERSIONS else out).append(m)
        if not nxt:
            break
        frontier = nxt
    return out
