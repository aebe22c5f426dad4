"""Compare a backend's outputs with eager PyTorch's; the comparator never builds anything."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np

from .tolerances import Tolerance, tolerance_for


@dataclass
class OutputComparison:
    """One output tensor of one case against its eager reference."""

    output: str
    shape: tuple[int, ...]
    max_abs_error: float
    max_rel_error: float
    scaled_error: float
    cosine: float
    top1_agreement: float | None
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


@dataclass
class ParityCase:
    """All outputs for one input shape."""

    label: str
    input_shapes: dict[str, tuple[int, ...]]
    outputs: list[OutputComparison]

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outputs)


@dataclass
class ParityReport:
    backend: str
    precision: str
    tolerance: Tolerance
    cases: list[ParityCase] = field(default_factory=list)
    gate: "ParityGate | None" = None  # how the scaled-error gate was decided (set by ``judge``)

    @property
    def passed(self) -> bool:
        return bool(self.cases) and all(c.passed for c in self.cases)

    def failures(self) -> list[str]:
        return [f"{c.label} {o.output}: {msg}" for c in self.cases for o in c.outputs for msg in o.failures]

    def worst(self) -> OutputComparison:
        return max((o for c in self.cases for o in c.outputs), key=lambda o: o.scaled_error)

    def to_dict(self) -> dict[str, object]:
        return {
            "backend": self.backend, "precision": self.precision, "passed": self.passed,
            "tolerance": self.tolerance.to_dict(), "gate": self.gate.to_dict() if self.gate else None,
            "cases": [{"label": c.label, "input_shapes": {k: list(v) for k, v in c.input_shapes.items()},
                       "passed": c.passed,
                       "outputs": [{**asdict(o), "shape": list(o.shape)} for o in c.outputs]} for c in self.cases],
        }


@dataclass
class ParityGate:
    """What the scaled-error gate was and why: the table's value, the caller's, or (FP32) a multiple of
    each case's float32 floor."""

    table: float
    gate: float  # the loosest case's
    float32_floor: float | None = None  # the worst case's, when measured
    floor_multiple: float | None = None
    source: str = "table"  # "table" | "float32 floor" | "caller"
    note: str = ""
    cases: dict[str, dict[str, float]] = field(default_factory=dict)  # per case: its floor and its gate

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


#: One case run on both sides: (label, feed, candidate's outputs, eager's outputs).
Run = tuple[str, Mapping[str, np.ndarray], Mapping[str, np.ndarray], Mapping[str, np.ndarray]]
#: float32 eager's own error on some feeds (``compare.conditioning.float32_floor`` over a module).
Floor = Callable[[list[dict[str, np.ndarray]]], float]


def judge(runs: Sequence[Run], *, backend: str, precision: str, tolerance: Tolerance, classifier: bool,
          floor: Floor | None = None, caller_set: bool = False) -> tuple[ParityReport, list[str]]:
    """Compare every output of every run; returns the report (with its ``gate``) and notes to show.

    FP32 with ``floor``, when a case misses the table: each case is gated at max(table,
    FLOOR_MULTIPLE x its own float32 floor), the cosine bound loosened to match (a network can be
    well conditioned at the traced size and chaotic at another: one floor for all would loosen every
    case). FP16/INT8 gates, and a gate the caller set (``caller_set``), never adapt.
    """
    table = tolerance_for(precision).max_scaled_error
    report = _judge(runs, backend, precision, [tolerance] * len(runs), classifier)
    report.gate = ParityGate(table, tolerance.max_scaled_error, source="caller" if caller_set else "table")
    if caller_set:
        return report, [f"scaled-error tolerance set to {tolerance.max_scaled_error:g} by the caller (table: {table:g})"]
    if report.passed or precision != "fp32" or floor is None:
        return report, []
    from .conditioning import FloorUnavailable
    from .tolerances import FLOOR_MULTIPLE, fp32_tolerance

    try:
        floors = [floor([dict(feed)]) for _, feed, _, _ in runs]
    except FloorUnavailable as exc:
        report.gate.note = str(exc)
        return report, [f"{exc}; the table's tolerance applies"]
    tolerances = [fp32_tolerance(f, tolerance) for f in floors]
    judged = _judge(runs, backend, precision, tolerances, classifier)
    bound = judged.tolerance.max_scaled_error
    judged.gate = ParityGate(table, bound, max(floors), FLOOR_MULTIPLE,
                             source="float32 floor" if bound > table else "table",
                             cases={label: {"float32_floor": f, "gate": t.max_scaled_error}
                                    for (label, _, _, _), f, t in zip(runs, floors, tolerances)})
    notes = [f"float32 itself is {max(floors):.2g} from float64 eager on these inputs (worst case): FP32 gate per "
             f"case max(table {table:g}, {FLOOR_MULTIPLE:g} x its floor), up to {bound:.3g}"]
    if bound > 1e-2:
        notes.append(f"a gate of {bound:.2g} cannot tell a wrong graph from float32 rounding on that case: this "
                     "network (e.g. random weights) is too ill-conditioned there for FP32 parity to prove much")
    return judged, notes


def _judge(runs: Sequence[Run], backend: str, precision: str, tolerances: Sequence[Tolerance],
           classifier: bool) -> ParityReport:
    """One tolerance per run; the report shows the loosest."""
    loosest = max(tolerances, key=lambda t: t.max_scaled_error)
    report = ParityReport(backend=backend, precision=precision, tolerance=loosest)
    for (label, feed, out, ref_out), case_tolerance in zip(runs, tolerances):
        comparisons = [compare_output(name, np.asarray(out[name], np.float32), ref, case_tolerance, classifier=classifier)
                       for name, ref in ref_out.items()]
        report.cases.append(ParityCase(label, {k: tuple(v.shape) for k, v in feed.items()}, comparisons))
    return report


def compare_runners(reference, candidate, cases: Sequence[tuple[str, Sequence[tuple[int, ...]]]], *,
                    backend: str, precision: str, tolerance: Tolerance, classifier: bool,
                    make_feed: Callable[..., dict[str, np.ndarray]], seed: int = 0,
                    floor: Floor | None = None) -> ParityReport:
    """Feed the same inputs to two active runners (eager, then the candidate) and compare every output.

    ``cases`` are (label, one shape per input); ``make_feed(specs, shapes, rng)`` draws the inputs.
    The candidate's feed is cast to its input dtypes and its outputs compared in float32. ``floor``:
    see ``judge`` (the FP32 gate adapts to the model's float32 floor).
    """
    from ..backends.base import cast_feed

    rng = np.random.default_rng(seed)
    runs = []
    for label, shapes in cases:
        feed = make_feed(reference.input_specs(), shapes, rng)
        ref_out = reference.infer(feed)
        out = {k: v.astype(np.float32) for k, v in candidate.infer(cast_feed(candidate, feed)).items()}
        runs.append((label, feed, out, ref_out))
    return judge(runs, backend=backend, precision=precision, tolerance=tolerance, classifier=classifier, floor=floor)[0]


def compare_output(name: str, out: np.ndarray, ref: np.ndarray, tolerance: Tolerance, *,
                   classifier: bool) -> OutputComparison:
    """Metrics of ``out`` against ``ref`` and the tolerance checks they fail (if any)."""
    if out.shape != ref.shape:
        return OutputComparison(name, tuple(out.shape), float("inf"), float("inf"), float("inf"), 0.0, None,
                                [f"shape {list(out.shape)} != eager {list(ref.shape)}"])
    out64, ref64 = out.astype(np.float64), ref.astype(np.float64)
    diff = np.abs(out64 - ref64)
    scale = float(np.abs(ref64).max()) or 1.0
    # Element-wise relative error, only where |ref| is at least 1% of the scale (else it is noise).
    significant = np.abs(ref64) >= 0.01 * scale
    max_rel = float((diff[significant] / np.abs(ref64[significant])).max()) if significant.any() else 0.0
    denom = np.linalg.norm(out64) * np.linalg.norm(ref64)
    cosine = float(np.dot(out64.ravel(), ref64.ravel()) / denom) if denom else float(np.array_equal(out64, ref64))
    top1 = None
    if classifier and ref.ndim == 2:
        top1 = float((out.argmax(1) == ref.argmax(1)).mean())
    finite = bool(np.isfinite(out64).all())
    cmp = OutputComparison(name, tuple(out.shape), float(diff.max()) if finite else float("inf"), max_rel,
                           float(diff.max()) / scale if finite else float("inf"), cosine, top1)
    if not finite:
        cmp.failures.append("output has NaN or Inf")
    if cmp.scaled_error > tolerance.max_scaled_error:
        cmp.failures.append(f"scaled error {cmp.scaled_error:.3g} > {tolerance.max_scaled_error:g} "
                            f"({cmp.scaled_error / tolerance.max_scaled_error:.1f}x the tolerance)")
    if not cosine >= tolerance.min_cosine:
        cmp.failures.append(f"cosine {cosine:.6f} < {tolerance.min_cosine}")
    if top1 is not None and tolerance.min_top1_agreement is not None and top1 < tolerance.min_top1_agreement:
        cmp.failures.append(f"top-1 agreement {top1:.3f} < {tolerance.min_top1_agreement}")
    return cmp
