"""The export's parity stages: plan the cases the model accepts (before exporting), then compare
ONNX Runtime with eager on them, gated by the table tolerance or the model's own float32 floor.

Eager runs once per case, in the plan: the same outputs judge the ONNX graph later, and a shape the
model itself rejects is found before the export's time is spent.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ...backends.base import TensorSpec
from ...compare import ParityReport, tolerance_for
from ...compare.parity import ParityGate, judge
from ...compare.cases import PARITY_SEED, Case, FeedMaker, choose_resolution, hw_dynamic, traced_cases
from ...errors import UsageError


@dataclass
class ParityPlan:
    """The cases, their seeded inputs and eager's outputs on them (float32, flat, by output name)."""

    cases: list[Case]
    feeds: list[dict[str, np.ndarray]]
    expected: list[dict[str, np.ndarray]]


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
    from ...models.user_model import describe_exception

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


def run_onnxruntime(plan: ParityPlan, model: bytes) -> list[dict[str, np.ndarray]]:
    """ONNX Runtime (CPU) outputs on the plan's inputs, cast to float32."""
    from ...backends import open_runner
    from ...backends.base import cast_feed

    with open_runner("onnxruntime-cpu", model, spinning=False) as runner:  # idle threads must not burn CPU
        return [{k: v.astype(np.float32) for k, v in runner.infer(cast_feed(runner, feed)).items()}
                for feed in plan.feeds]


def parity(plan: ParityPlan, model: bytes, *, precision: str, classifier: bool, eager: nn.Module,
           max_scaled_error: float | None = None,
           floor: Callable[[nn.Module, list[dict[str, np.ndarray]]], float] | None = None) -> ParityResult:
    """Compare ONNX Runtime with eager on the plan and decide the gate (``compare.parity.judge``).

    FP32 without an explicit ``max_scaled_error``: a case that misses the table is gated at
    max(table, FLOOR_MULTIPLE x its float32 floor), ``eager`` float32 against float64 on that case's
    inputs; both values are reported. FP16 and INT8 use the table as it is.
    """
    from ...compare.conditioning import float32_floor

    tolerance = tolerance_for(precision)
    if max_scaled_error is not None:
        tolerance = dataclasses.replace(tolerance, max_scaled_error=max_scaled_error)
    runs = [(label, feed, got, expected) for (label, _), feed, got, expected
            in zip(plan.cases, plan.feeds, run_onnxruntime(plan, model), plan.expected)]
    measure = floor or float32_floor
    report, notes = judge(runs, backend="onnxruntime[cpu]", precision=precision, tolerance=tolerance,
                          classifier=classifier, floor=lambda feeds: measure(eager, feeds),
                          caller_set=max_scaled_error is not None)
    return ParityResult(report, report.gate, notes)


def parity_failure(result: ParityResult) -> str:
    """The one line a failed parity raises with."""
    gate = result.gate
    why = ""
    if gate.float32_floor is not None:
        why = (f" (gate {gate.gate:.3g} = max(table {gate.table:g}, {gate.floor_multiple:g} x float32 floor "
               f"{gate.float32_floor:.2g}): the graph computes something else than eager)")
    return "parity against eager failed, nothing written: " + "; ".join(result.report.failures()) + why
