"""Range analysis for FP16: which tensors of the FP32 graph leave FP16's range on real inputs.

ONNX Runtime's CPU provider has almost no FP16 kernels: it computes most FP16 nodes in float32
behind casts it inserts, so an intermediate that overflows FP16 on a GPU (an SSD-style L2 norm's sum
of squares) often never exists in FP16 on the CPU, and an FP16 export passes parity there. Running
the FP32 graph once with every intermediate exposed as an output finds those tensors without a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Collection, Mapping, Sequence

import numpy as np
import onnx

FP16_MAX = 65504.0
#: FP16's smallest subnormal: a nonzero tensor whose every value is below half of it is flushed to 0.
FP16_TINY = 2.0 ** -25


@dataclass
class TensorRange:
    max_abs: float
    nonzero: bool
    nonfinite: bool = False


@dataclass
class RangeProblem:
    """One tensor the FP16 region would hold that FP16 cannot."""

    tensor: str
    producer: str  # node name ('' for a graph input)
    kind: str  # "overflow" | "underflow"
    max_abs: float
    fp16_readers: list[str]  # FP16 nodes that read it (empty: only its producer is FP16)

    def describe(self) -> str:
        if self.kind == "overflow":
            return f"{self.tensor!r} reaches {self.max_abs:.3g} > {FP16_MAX:g} (FP16's largest value)"
        return f"{self.tensor!r} is nonzero but below {2 * FP16_TINY:.2g} everywhere: FP16 flushes it to zero"


def tensor_ranges(model: onnx.ModelProto, feeds: Sequence[Mapping[str, np.ndarray]]) -> dict[str, TensorRange]:
    """Max |value| of every float tensor of ``model`` (FP32) over ``feeds``, one run per feed."""
    import onnxruntime as ort

    names = list(dict.fromkeys(o for n in model.graph.node for o in n.output if o))
    existing = {o.name for o in model.graph.output}
    before = len(model.graph.output)
    try:  # untyped outputs: ONNX Runtime takes their types from the graph
        model.graph.output.extend(onnx.ValueInfoProto(name=n) for n in names if n not in existing)
        data = model.SerializeToString()
    finally:
        del model.graph.output[before:]
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # no fusion: every tensor exists
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    outputs = [o.name for o in session.get_outputs()]
    ranges: dict[str, TensorRange] = {}
    for feed in feeds:
        values = session.run(None, {k: np.asarray(v, np.float32) for k, v in feed.items()})
        for name, value in zip(outputs, values):
            if not np.issubdtype(value.dtype, np.floating) or value.size == 0:
                continue
            finite = np.isfinite(value)
            magnitude = float(np.abs(value[finite]).max()) if finite.any() else 0.0
            seen = ranges.get(name)
            ranges[name] = TensorRange(max(magnitude, seen.max_abs if seen else 0.0),
                                       bool(np.any(value[finite] != 0)) or bool(seen and seen.nonzero),
                                       (not finite.all()) or bool(seen and seen.nonfinite))
    return ranges


def fp16_range_problems(model: onnx.ModelProto, ranges: Mapping[str, TensorRange],
                        fp32_nodes: Collection[str]) -> list[RangeProblem]:
    """Tensors, in graph order, that an FP16 node writes or reads and that leave FP16's range.

    A tensor an FP32 node writes is cast to FP16 for the FP16 nodes that read it: it counts too.
    """
    readers: dict[str, list[str]] = {}
    for node in model.graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node.name)
    problems = []
    for node in model.graph.node:
        for out in node.output:
            r = ranges.get(out)
            if r is None:
                continue
            fp16_readers = [n for n in readers.get(out, []) if n not in fp32_nodes]
            if node.name in fp32_nodes and not fp16_readers:
                continue
            if r.max_abs > FP16_MAX:
                problems.append(RangeProblem(out, node.name, "overflow", r.max_abs, fp16_readers))
            elif r.nonzero and r.max_abs < FP16_TINY and node.op_type != "Constant":
                # A constant (an epsilon) is the converter's to clamp (Fp16Report.clamped_values).
                problems.append(RangeProblem(out, node.name, "underflow", r.max_abs, fp16_readers))
    return problems
