"""The export's parity stages: plan the cases the model accepts (before exporting), then compare
ONNX Runtime with eager on them, gated by the table tolerance or the model's own float32 floor.

Eager runs once per case, in the plan: the same outputs judge the ONNX graph later, and a shape the
model itself rejects is found before the export's time is spent.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ..backends.base import TensorSpec
from ..compare import ParityCase, ParityReport, Tolerance, compare_output, tolerance_for
from ..compare.cases import PARITY_SEED, Case, FeedMaker, choose_resolution, hw_dynamic, traced_cases
from ..errors import UsageError


@dataclass
class ParityPlan:
    """The cases, their seeded inputs and eager's outputs on them (float32, flat, by output name)."""

    cases: list[Case]
    feeds: list[dict[str, np.ndarray]]
    expected: list[dict[str, np.ndarray]]


@dataclass
class ParityGate:
    """What the FP32 gate was and why: the table's value, or a multiple of the model's float32 floor."""

    table: float
    gate: float
    float32_floor: float | None = None
    floor_multiple: float | None = None
    source: str = "table"  # "table" | "float32 floor" | "caller"
    note: str = ""
    cases: dict[str, dict[str, float]] = field(default_factory=dict)  # per case: its floor and its gate

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class ParityResult:
    report: ParityReport
    gate: ParityGate
    notes: list[str] = field(default_factory=list)


def _eager(model: nn.Module, feed: Mapping[str, np.ndarray], output_names: Sequence[str]) -> dict[str, np.ndarray]:
    with torch.no_grad():
        outs = model(*(torch.from_numpy(np.ascontiguousarray(v)) for v in feed.values()))
    return {n: o.detach().float().numpy() for n, o in zip(output_names, outs)}


def plan_parity(model: nn.Module, specs: Sequence[TensorSpec], trace_shapes: Sequence[tuple[int, ...]],
                axes: Sequence[Mapping[int, str]], output_names: Sequence[str], *, make_feed: FeedMaker,
                parity_shape: tuple[int, int] | None = None,
                known: tuple[dict[str, np.ndarray], dict[str, np.ndarray]] | None = None) -> ParityPlan:
    """Run eager (``model`` returns a flat tuple) at every parity case; choose the untraced resolution.

    ``known``: a (feed, eager outputs) pair already computed; a case of the same shapes uses it
    instead of running eager again. A case the model itself cannot run is a ``UsageError`` naming
    the shape: that is the model's limit, not the exporter's.
    """
    from ..models.user_model import describe_exception

    plan = ParityPlan([], [], [])

    def attempt(case: Case) -> str | None:
        if known is not None and [tuple(v.shape) for v in known[0].values()] == [tuple(s) for s in case[1]]:
            plan.cases.append(case)
            plan.feeds.append(known[0])
            plan.expected.append(known[1])
            return None
        feed = make_feed(specs, case[1], np.random.default_rng([PARITY_SEED, len(plan.cases)]))
        try:
            expected = _eager(model, feed, output_names)
        except Exception as exc:  # the model's own code rejects the shape
            return describe_exception(exc)
        plan.cases.append(case)
        plan.feeds.append(feed)
        plan.expected.append(expected)
        return None

    for case in traced_cases(trace_shapes, axes):
        reason = attempt(case)
        if reason is not None:
            shapes = ", ".join("x".join(map(str, s)) for s in case[1])
            raise UsageError(f"the model itself (eager PyTorch) fails at input shape {shapes} ({case[0]}): {reason}")
    if hw_dynamic(trace_shapes, axes):
        choose_resolution(trace_shapes, axes, attempt, chosen=parity_shape)
    elif parity_shape is not None:
        raise UsageError("--parity-shape needs dynamic height and width (--dynamic hw or all)")
    return plan


def _judge(plan: ParityPlan, outputs: list[dict[str, np.ndarray]], *, backend: str, precision: str,
           tolerance: Tolerance | Sequence[Tolerance], classifier: bool) -> ParityReport:
    """Compare every case; ``tolerance`` is one for all cases or one per case (the report shows the loosest)."""
    per_case = [tolerance] * len(plan.cases) if isinstance(tolerance, Tolerance) else list(tolerance)
    loosest = max(per_case, key=lambda t: t.max_scaled_error)
    report = ParityReport(backend=backend, precision=precision, tolerance=loosest)
    for (label, _), feed, got, expected, case_tolerance in zip(plan.cases, plan.feeds, outputs, plan.expected,
                                                               per_case):
        comparisons = [compare_output(name, got[name], ref, case_tolerance, classifier=classifier)
                       for name, ref in expected.items()]
        report.cases.append(ParityCase(label, {k: tuple(v.shape) for k, v in feed.items()}, comparisons))
    return report


def run_onnxruntime(plan: ParityPlan, model: bytes) -> list[dict[str, np.ndarray]]:
    """ONNX Runtime (CPU) outputs on the plan's inputs, cast to float32."""
    from ..backends.base import cast_feed
    from ..backends.onnxruntime import OnnxRuntimeRunner

    with OnnxRuntimeRunner(model, provider="cpu", spinning=False) as runner:  # idle threads must not burn CPU
        return [{k: v.astype(np.float32) for k, v in runner.infer(cast_feed(runner, feed)).items()}
                for feed in plan.feeds]


def parity(plan: ParityPlan, model: bytes, *, precision: str, classifier: bool, eager: nn.Module,
           max_scaled_error: float | None = None,
           floor: Callable[[nn.Module, list[dict[str, np.ndarray]]], float] | None = None) -> ParityResult:
    """Compare ONNX Runtime with eager on the plan and decide the gate.

    FP32 without an explicit ``max_scaled_error``: when an output passes the table's scaled error
    only the table is needed; otherwise the gate is max(table, FLOOR_MULTIPLE x float32 floor) of
    ``eager`` on the plan's inputs (float32 against float64), and both values are reported. FP16 and
    INT8 use the table as it is.
    """
    table = tolerance_for(precision)
    outputs = run_onnxruntime(plan, model)
    backend = "onnxruntime[cpu]"
    if max_scaled_error is not None:
        tolerance = dataclasses.replace(table, max_scaled_error=max_scaled_error)
        report = _judge(plan, outputs, backend=backend, precision=precision, tolerance=tolerance, classifier=classifier)
        gate = ParityGate(table.max_scaled_error, max_scaled_error, source="caller")
        return ParityResult(report, gate, [f"scaled-error tolerance set to {max_scaled_error:g} by the caller "
                                           f"(table: {table.max_scaled_error:g})"])
    report = _judge(plan, outputs, backend=backend, precision=precision, tolerance=table, classifier=classifier)
    gate = ParityGate(table.max_scaled_error, table.max_scaled_error)
    if report.passed or precision != "fp32":
        return ParityResult(report, gate)
    return _floor_gate(plan, outputs, report, eager, classifier, floor)


def _floor_gate(plan: ParityPlan, outputs, report: ParityReport, eager: nn.Module, classifier: bool,
                floor: Callable | None) -> ParityResult:
    """FP32 outside the table: measure how far float32 itself is from exact on each case's inputs, and
    gate that case at a multiple of its own floor (a network can be well conditioned at the traced
    size and chaotic at another: one floor for all would loosen every case)."""
    from ..compare.conditioning import FloorUnavailable, float32_floor
    from ..compare.tolerances import FLOOR_MULTIPLE, fp32_tolerance

    table = report.tolerance
    try:
        floors = [(floor or float32_floor)(eager, [feed]) for feed in plan.feeds]
    except FloorUnavailable as exc:
        gate = ParityGate(table.max_scaled_error, table.max_scaled_error, source="table", note=str(exc))
        return ParityResult(report, gate, [f"{exc}; the table's tolerance applies"])
    tolerances = [fp32_tolerance(f, table) for f in floors]  # the scaled-error gate, and the cosine bound to match
    bound = max(t.max_scaled_error for t in tolerances)
    cases = {label: {"float32_floor": f, "gate": t.max_scaled_error}
             for (label, _), f, t in zip(plan.cases, floors, tolerances)}
    gate = ParityGate(table.max_scaled_error, bound, max(floors), FLOOR_MULTIPLE,
                      source="float32 floor" if bound > table.max_scaled_error else "table", cases=cases)
    judged = _judge(plan, outputs, backend=report.backend, precision=report.precision, tolerance=tolerances,
                    classifier=classifier)
    notes = [f"float32 itself is {max(floors):.2g} from float64 eager on these inputs (worst case): FP32 gate per "
             f"case max(table {table.max_scaled_error:g}, {FLOOR_MULTIPLE:g} x its floor), up to {bound:.3g}"]
    if bound > 1e-2:
        notes.append(f"a gate of {bound:.2g} cannot tell a wrong graph from float32 rounding on that case: this "
                     "network (e.g. random weights) is too ill-conditioned there for FP32 parity to prove much")
    return ParityResult(judged, gate, notes)


def parity_failure(result: ParityResult) -> str:
    """The one line a failed parity raises with."""
    gate = result.gate
    why = ""
    if gate.float32_floor is not None:
        why = (f" (gate {gate.gate:.3g} = max(table {gate.table:g}, {gate.floor_multiple:g} x float32 floor "
               f"{gate.float32_floor:.2g}): the graph computes something else than eager)")
    return "parity against eager failed, nothing written: " + "; ".join(result.report.failures()) + why
