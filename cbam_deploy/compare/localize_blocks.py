"""Localization's per-block table: every attention block the finder sees, not only CBAM.

A gate (``precision/attention.py``: sigmoid, hard sigmoid, products of gates, SimAM...) is applied by
a ``Mul``; gates applied one after the other (CBAM's channel then spatial gate, Coordinate
Attention's ``x * a_w * a_h``) or to the same input (``parallel``) form one block, named after the
innermost module holding all their Muls (``layer2.0.cbam``, ``ca3``, an SE module). A gate whose
values span only channels (N x C, N x C x 1 x 1) fills the "channel" column; one that spans height
or width (CBAM's N x 1 x H x W, Coordinate Attention's N x C x H x 1 and N x C x 1 x W, SimAM's and
BAM's N x C x H x W) the "spatial" column; with several, the worst.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import onnx

if TYPE_CHECKING:
    from .eager_capture import Activation
    from .localize import BlockRow, ModuleError


@dataclass
class Gate:
    block: str | None  # None: its Muls belong to no module (functional code at the top level)
    activation: str  # the gate activation's output tensor (Sigmoid, HardSigmoid, h_sigmoid's Div)
    pre: str  # that activation's input (the gate conv/MLP's output)
    applied: str  # x * gate: the Mul's output
    shared: bool = False  # the Mul applies several gates at once (a rewrite summed them)
    modules: list[str] = field(default_factory=list)


def attention_gates(proto: onnx.ModelProto, scopes: dict[str, list[str]]) -> list[Gate]:
    """Every gate the attention finder sees, with its block, in graph order."""
    from ..precision.attention import find_attention_regions

    nodes = {n.name: n for n in proto.graph.node}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in proto.graph.node:
        for i in node.input:
            consumers.setdefault(i, []).append(node)
    regions = find_attention_regions(proto)
    found, muls = [], []
    for region in regions:
        mul = next((m for m in consumers.get(region.gate_tensor, []) if m.op_type == "Mul"
                    and region.gated_tensor in m.input), None)
        if mul is None:
            continue
        head = nodes[region.gate]
        pre = next((i for i in head.input if i and i != head.output[0]), head.input[0])
        if head.op_type in ("Div", "Mul"):  # relu6(x + 3) / 6: the input of the Add before the Clip
            pre = _hard_sigmoid_input(head, {o: n for n in proto.graph.node for o in n.output}) or pre
        found.append((region.gated_tensor, mul, Gate(None, head.output[0], pre, mul.output[0])))
        muls.append(mul.name)
    parent: dict[str, str] = {}

    def root(key: str) -> str:
        while parent.get(key, key) != key:
            key = parent[key]
        return key

    for gated, mul, _ in found:
        parent[root(mul.output[0])] = root(gated)
    groups: dict[str, list[list[str]]] = {}
    for gated, mul, _ in found:
        groups.setdefault(root(gated), []).append(scopes.get(mul.name, []))
    for gated, mul, gate in found:
        gate.block = _common(groups[root(gated)])
        gate.shared = muls.count(mul.name) > 1
    return [g for _, _, g in found]


def _hard_sigmoid_input(head: onnx.NodeProto, producer: dict[str, onnx.NodeProto]) -> str | None:
    clip = next((producer[i] for i in head.input if i in producer and producer[i].op_type == "Clip"), None)
    add = producer.get(clip.input[0]) if clip is not None else None
    if add is None or add.op_type != "Add":
        return None
    return next((i for i in add.input if i in producer and producer[i].op_type not in ("Constant",)), add.input[0])


def _common(chains: list[list[str]]) -> str | None:
    """The innermost module containing every chain (chains are module paths, outermost first)."""
    common: list[str] = []
    for level in zip(*chains):
        if len(set(level)) > 1:
            break
        common.append(level[0])
    return common[-1] if common else None


def gate_kind(shape: tuple[int, ...]) -> str | None:
    """N x C (x 1 x 1): a channel gate; any gate over height or width: spatial."""
    if len(shape) == 2 or (len(shape) == 4 and shape[2:] == (1, 1)):
        return "channel"
    return "spatial" if len(shape) == 4 else None


def block_rows(gates: list[Gate], errors: list["ModuleError"], values: dict[str, np.ndarray],
               activations: list["Activation"]) -> list["BlockRow"]:
    """Per attention block, in eager's order: the error after its channel gate(s), spatial gate(s), block."""
    from .localize import BlockRow

    by_module = {e.module: e for e in errors if e.call == 0}
    by_tensor: dict[str, list[ModuleError]] = {}
    for e in errors:
        by_tensor.setdefault(e.tensor, []).append(e)
    order = {a.module: a.order for a in activations}
    rows: dict[str, BlockRow] = {}
    for gate in gates:
        key = gate.block or gate.applied
        row = rows.setdefault(key, BlockRow(key))
        shape = values[gate.activation].shape if gate.activation in values else ()
        kind = gate_kind(tuple(shape))
        if kind is None:
            row.notes.append(f"gate {gate.activation}: neither channel- nor spatial-shaped {list(shape)}")
            continue
        error = _gate_error(gate, kind, by_tensor, row)
        if error is not None:
            previous = getattr(row, kind)
            setattr(row, kind, max(previous, error.scaled_error) if previous is not None else error.scaled_error)
        if gate.block and gate.block in by_module:
            row.output = by_module[gate.block].scaled_error
    ordered = sorted(rows.values(), key=lambda r: order.get(r.block, 1 << 30))
    previous = None
    for row in ordered:
        if row.output is not None and previous:
            row.growth = row.output / previous
        previous = row.output if row.output else previous
    return ordered


def _gate_error(gate: Gate, kind: str, by_tensor: dict[str, list["ModuleError"]], row: "BlockRow"):
    """The error right after the gate: a module whose output is ``x * gate``; else its activation's
    output (a Sigmoid module), else what feeds the activation, said in the row's notes."""
    after = [e for e in by_tensor.get(gate.applied, []) if e.call == 0]
    if not gate.shared and after:
        return next((e for e in after if e.module != gate.block), after[0])
    for tensor, note in ((gate.activation, "its sigmoid"), (gate.pre, "the input of its gate activation")):
        candidates = by_tensor.get(tensor, [])
        if candidates:
            why = "gates applied in one Mul" if gate.shared else "x * gate is no module's output"
            row.notes.append(f"{kind}: {note} ({why})")
            return candidates[0]
    row.notes.append(f"{kind}: no module output next to the gate to compare")
    return None
