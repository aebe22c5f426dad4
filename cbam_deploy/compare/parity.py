"""Compare a backend's outputs with eager PyTorch's; the comparator never builds anything."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import numpy as np

from .tolerances import Tolerance


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
    #: FP32 only, when the table's tolerance was not met: float32 eager's own error against float64
    #: eager on the same inputs; the gate then was max(table, FLOOR_MULTIPLE x floor) (``tolerance``).
    float32_floor: float | None = None
    gate_note: str = ""

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
            "tolerance": self.tolerance.to_dict(), "float32_floor": self.float32_floor, "gate_note": self.gate_note,
            "cases": [{"label": c.label, "input_shapes": {k: list(v) for k, v in c.input_shapes.items()},
                       "passed": c.passed,
                       "outputs": [{**asdict(o), "shape": list(o.shape)} for o in c.outputs]} for c in self.cases],
        }


def compare_runners(reference, candidate, cases: Sequence[tuple[str, Sequence[tuple[int, ...]]]], *,
                    backend: str, precision: str, tolerance: Tolerance, classifier: bool,
                    make_feed: Callable[..., dict[str, np.ndarray]], seed: int = 0,
                    floor: Callable[[list[dict[str, np.ndarray]]], float] | None = None) -> ParityReport:
    """Feed the same inputs to two active runners (eager, then the candidate) and compare every output.

    ``cases`` are (label, one shape per input); ``make_feed(specs, shapes, rng)`` draws the inputs.
    The candidate's feed is cast to its input dtypes and its outputs compared in float32.
    ``floor(feeds)``: for FP32 when the table's tolerance is missed, float32 eager's own error on
    those feeds (``compare.conditioning.float32_floor``); the gate becomes max(table,
    FLOOR_MULTIPLE x floor) and the report says so. FP16/INT8 gates never adapt.
    """
    from ..backends.base import cast_feed

    rng = np.random.default_rng(seed)
    runs = []
    for label, shapes in cases:
        feed = make_feed(reference.input_specs(), shapes, rng)
        ref_out = reference.infer(feed)
        out = {k: v.astype(np.float32) for k, v in candidate.infer(cast_feed(candidate, feed)).items()}
        runs.append((label, feed, out, ref_out))
    report = _judge(runs, backend, precision, tolerance, classifier)
    if report.passed or precision != "fp32" or floor is None:
        return report
    from .conditioning import FloorUnavailable
    from .tolerances import FLOOR_MULTIPLE, fp32_tolerance

    try:
        measured = floor([feed for _, feed, _, _ in runs])
    except FloorUnavailable as exc:
        report.gate_note = f"{exc}; the table's tolerance applies"
        return report
    adapted = fp32_tolerance(measured, tolerance)
    bound = adapted.max_scaled_error
    judged = _judge(runs, backend, precision, adapted, classifier)
    judged.float32_floor = measured
    judged.gate_note = (f"float32 eager is {measured:.2g} from float64 eager on these inputs: FP32 gate "
                        f"max(table {tolerance.max_scaled_error:g}, {FLOOR_MULTIPLE:g} x floor) = {bound:.3g}")
    return judged


def _judge(runs, backend: str, precision: str, tolerance: Tolerance, classifier: bool) -> ParityReport:
    report = ParityReport(backend=backend, precision=precision, tolerance=tolerance)
    for label, feed, out, ref_out in runs:
        comparisons = [compare_output(name, out[name], ref_out[name], tolerance, classifier=classifier) for name in ref_out]
        report.cases.append(ParityCase(label, {k: tuple(v.shape) for k, v in feed.items()}, comparisons))
    return report


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
