"""The export's precision stage: FP16 or INT8 for a target, with float kept per PyTorch module.

Modules are named as in PyTorch (``layer1.0.cbam``, ``neck.l2norm``) and mapped to ONNX nodes with
the pairing localization uses (``compare.graph_scopes``). What stays float, and why, is recorded:

* ``attention rule``: CBAM-style gates (``precision.attention``), FP16-sensitive ops;
* ``user``: ``--keep-float MODULE[,MODULE]``;
* ``range`` (FP16, ``--keep-float auto``): a tensor the FP16 region would hold leaves FP16's range
  on the calibration/parity inputs (``precision.ranges``): its module stays FP32;
* ``error`` (INT8, ``--keep-float auto``): modules added, worst per-module error first, until the
  task gate holds (``keep_float.greedy_int8``).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Callable, Collection, Mapping, Sequence

import numpy as np
import onnx

from ...errors import CheckFailedError, UsageError
from ...options import KEEP_FLOAT_AUTO, TARGET_INT8_FLAVOR

_MAX_RANGE_ROUNDS = 256


@dataclass
class ModuleMap:
    """ONNX node -> the PyTorch modules that contain it, and module -> its nodes."""

    scopes: dict[str, list[str]]
    nodes: dict[str, list[str]] = field(default_factory=dict)
    modules: Collection[str] = ()

    @classmethod
    def of(cls, proto: onnx.ModelProto, modules: Collection[str]) -> "ModuleMap":
        from ...compare.graph_scopes import node_scopes

        scopes = node_scopes(proto, modules)
        for node in proto.graph.node:
            if not scopes.get(node.name):
                scopes[node.name] = _by_suffix(node.name, modules)
        nodes: dict[str, list[str]] = {}
        for node in proto.graph.node:
            for module in scopes.get(node.name, []):
                nodes.setdefault(module, []).append(node.name)
        return cls(scopes, nodes, modules)

    def owner(self, node: str) -> str:
        """The innermost module of ``node``, or ``node <name>`` for top-level code."""
        chain = self.scopes.get(node) or []
        return chain[-1] if chain else f"node {node}"

    def members(self, module: str) -> list[str]:
        return self.nodes.get(module, []) if not module.startswith("node ") else [module[len("node "):]]


def _by_suffix(name: str, modules: Collection[str]) -> list[str]:
    """A TorchScript node name whose scope is a module called from outside its parent's forward
    (``self.neck.l2norm(x)`` in the model's forward is named ``/l2norm/ReduceSum``): the one module
    whose path ends with that scope, else none."""
    parts = name.split("/")[1:-1] if name.startswith("/") else []
    for k in range(len(parts), 0, -1):
        tail = parts[k - 1]
        found = [m for m in modules if m == tail or m.endswith("." + tail)]
        if len(found) == 1:
            return [found[0]]
    return []


def resolve_keep_float(names: Sequence[str], mapping: ModuleMap) -> list[str]:
    """The user's ``--keep-float`` module names, checked: an unknown one is a one-line error with
    the closest names; one that owns no ONNX node (a folded BatchNorm, an unused module) too."""
    for name in names:
        if name in mapping.nodes:
            continue
        if name in mapping.modules:
            raise UsageError(f"--keep-float {name}: that module has no nodes in the ONNX graph (folded into its "
                             "neighbour, or never called); name the module that contains it")
        close = difflib.get_close_matches(name, list(mapping.nodes), n=5, cutoff=0.5)
        hint = f"; closest: {', '.join(close)}" if close else f"; modules look like {', '.join(list(mapping.nodes)[:3])}"
        raise UsageError(f"--keep-float {name}: no such module in the model{hint}")
    return list(names)


@dataclass
class KeptFloat:
    """Modules kept in float beyond the rules: module -> (why: user | range | error, detail)."""

    modules: dict[str, dict[str, str]] = field(default_factory=dict)

    def add(self, module: str, why: str, detail: str) -> None:
        self.modules.setdefault(module, {"why": why, "detail": detail})

    def nodes(self, mapping: ModuleMap) -> dict[str, str]:
        return {n: f"{entry['why']}: kept float ({module})" for module, entry in self.modules.items()
                for n in mapping.members(module)}


def fp16_stage(proto: onnx.ModelProto, *, keep_io_types: bool, keep_float: Sequence[str], mapping: ModuleMap,
               feeds: Sequence[Mapping[str, np.ndarray]]) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """FP16 with the rules, the user's modules and (``auto``) the modules whose tensors leave FP16's
    range kept FP32. Without ``auto``, a tensor out of range is a ``CheckFailedError`` naming it."""
    from ...precision import convert_to_fp16
    from ...precision.fp16 import fp16_rule_nodes
    from ...precision.ranges import fp16_range_problems, tensor_ranges

    auto = KEEP_FLOAT_AUTO in keep_float
    kept = KeptFloat()
    for module in resolve_keep_float([m for m in keep_float if m != KEEP_FLOAT_AUTO], mapping):
        kept.add(module, "user", "--keep-float")
    rules = fp16_rule_nodes(proto)
    ranges = tensor_ranges(proto, feeds)
    for _ in range(_MAX_RANGE_ROUNDS):
        fp32 = set(rules) | set(kept.nodes(mapping))
        problems = fp16_range_problems(proto, ranges, fp32)
        if not problems:
            break
        if not auto:
            raise CheckFailedError(range_failure(problems, mapping, [o.name for o in proto.graph.output]))
        before = len(kept.modules)
        for problem in problems:
            # The writer when it is FP16; else the FP16 readers, which get the value cast to FP16.
            for node in [problem.producer] if problem.producer not in fp32 else problem.fp16_readers:
                kept.add(mapping.owner(node), "range", problem.describe())
        if len(kept.modules) == before:
            raise CheckFailedError(range_failure(problems, mapping, [o.name for o in proto.graph.output]))
    converted, report = convert_to_fp16(proto, keep_io_types=keep_io_types, keep_fp32_nodes=kept.nodes(mapping))
    details = report.to_dict()
    details["kept_float_modules"] = kept.modules
    if kept.modules:  # an honest "unknown" rather than a CPU figure that says nothing about a GPU
        details["kept_float_speed_cost"] = ("not measured: ONNX Runtime CPU computes FP16 nodes in float32, so a CPU "
                                            "timing cannot show what FP32 modules cost on a GPU; cbam-bench on the GPU can")
    details["range_analysis"] = f"{len(feeds)} input batches, {len(ranges)} tensors of the FP32 graph"
    return converted, details


def range_failure(problems: Sequence[Any], mapping: ModuleMap, outputs: Sequence[str]) -> str:
    """One line: which tensor (an output first) leaves FP16's range, where it starts, what to try."""
    first = problems[0]
    start = f"module {mapping.owner(first.producer)}" if first.producer else "the input"
    hidden = ("ONNX Runtime CPU computes most FP16 nodes in float32 and hides it, a GPU computing in FP16 "
              "does not")
    modules = list(dict.fromkeys(mapping.owner(p.producer) for p in problems if p.producer))
    out = next((p for p in problems if p.tensor in outputs), None)
    if out is not None:
        return (f"fp16: output {out.tensor!r} overflows FP16 (|x| up to {out.max_abs:.3g} > 65504 in the FP32 graph "
                f"on the parity inputs), so in FP16 it becomes inf/NaN; the overflow starts at {start} "
                f"({first.describe()}); {len(modules)} module(s) out of range; {hidden}. Try --keep-float auto "
                "(keeps them FP32), or export fp32")
    return (f"fp16: {start}: {first.describe()} on the calibration/parity inputs ({len(problems)} tensor(s) in "
            f"{len(modules)} module(s): {', '.join(modules[:4])}); {hidden}. Keep it in float: --keep-float auto, "
            f"or --keep-float {','.join(m for m in modules[:4] if not m.startswith('node '))}")


def int8_stage(proto: onnx.ModelProto, calibration: np.ndarray, *, calibration_label: str, target: str, method: str | None,
               keep_float: Sequence[str], mapping: ModuleMap,
               auto_search: Callable[..., Any] | None = None) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """INT8 in ``target``'s flavor, the user's modules kept float; ``auto_search(quantize, kept)``
    (``--keep-float auto``) adds modules until the task gate holds."""
    from ...precision import quantize_int8

    kept = KeptFloat()
    for module in resolve_keep_float([m for m in keep_float if m != KEEP_FLOAT_AUTO], mapping):
        kept.add(module, "user", "--keep-float")
    flavor = TARGET_INT8_FLAVOR[target]

    def quantize(k: KeptFloat):
        return quantize_int8(proto, calibration, calibration_label=calibration_label, flavor=flavor, method=method,
                             keep_float=k.nodes(mapping))

    extra: dict[str, Any] = {}
    if KEEP_FLOAT_AUTO in keep_float:
        if auto_search is None:
            raise UsageError("--keep-float auto with INT8 needs a task gate (the export's parity inputs)")
        quantized, report, extra = auto_search(quantize, kept)
    else:
        quantized, report = quantize(kept)
    details = {**report.to_dict(), "target": target, "kept_float_modules": kept.modules, **extra}
    return quantized, details


def overflow_diagnosis(fp32: onnx.ModelProto, feeds: Sequence[Mapping[str, np.ndarray]], eager_module) -> str | None:
    """Why an FP16 model derived from ``fp32`` answered NaN/Inf, from range analysis of the FP32 graph:
    the output that overflows and where it starts (a one-line hint), or None when nothing leaves FP16's range."""
    from ...compare.eager_capture import user_modules
    from ...onnx_export.graph import ensure_node_names
    from ...precision.fp16 import fp16_rule_nodes
    from ...precision.ranges import fp16_range_problems, tensor_ranges

    proto = onnx.ModelProto.FromString(fp32.SerializeToString())
    ensure_node_names(proto)
    problems = fp16_range_problems(proto, tensor_ranges(proto, feeds), set(fp16_rule_nodes(proto)))
    if not problems:
        return None
    return range_failure(problems, ModuleMap.of(proto, user_modules(eager_module)), [o.name for o in proto.graph.output])
