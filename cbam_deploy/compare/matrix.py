"""The validation matrix: eager against every backend x precision available here, at several batch
sizes and resolutions, with held-out accuracy per cell for reference-task models. A backend or
precision that cannot run here is a "skipped: <reason>" cell, never a pass."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import MissingDependencyError
from ..model_dir import ExportedModel
from .parity import ParityReport, compare_runners
from .tolerances import tolerance_for

BACKENDS = ("onnxruntime-cpu", "onnxruntime-cuda", "onnxruntime-tensorrt", "tensorrt")


@dataclass
class Cell:
    backend: str
    precision: str
    status: str  # "pass" | "fail" | "skipped"
    reason: str = ""
    parity: ParityReport | None = None
    accuracy: dict[str, Any] | None = None
    failures: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.backend} {self.precision}"

    def to_dict(self) -> dict[str, Any]:
        return {"backend": self.backend, "precision": self.precision, "status": self.status, "reason": self.reason,
                "failures": self.failures, "accuracy": self.accuracy,
                "parity": self.parity.to_dict() if self.parity else None}


def precision_models(model: ExportedModel, precisions: Sequence[str], calibration: np.ndarray | None,
                     calibration_label: str) -> dict[str, bytes | str]:
    """Serialized model per precision (or the reason it cannot be made), from the FP32 export."""
    from ..precision import convert_to_fp16, quantize_int8

    source_precision = model.metadata.get("precision", "fp32")
    out: dict[str, bytes | str] = {}
    for precision in precisions:
        if precision == source_precision:
            out[precision] = model.proto.SerializeToString()
        elif source_precision != "fp32":
            out[precision] = f"this model is {source_precision}; validate its FP32 export to derive {precision}"
        elif precision == "fp16":
            out[precision] = convert_to_fp16(model.proto)[0].SerializeToString()
        elif calibration is None:
            out[precision] = "no calibration data (pass --calibration DIR|FILE.npy|synthetic)"
        else:
            out[precision] = quantize_int8(model.proto, calibration, calibration_label=calibration_label)[0].SerializeToString()
    return out


def _runner_for(backend: str, data: bytes, model: ExportedModel, cases, workdir: Path):
    """A runner for the backend, or MissingDependencyError saying why it cannot run here."""
    from ..backends.onnxruntime import OnnxRuntimeRunner

    if backend.startswith("onnxruntime-"):
        runner = OnnxRuntimeRunner(data, provider=backend.split("-", 1)[1])
        runner.__enter__()  # creating the session is where a missing provider shows up
        return runner
    from ..backends.tensorrt import PlanSidecar, derive_profile, write_sidecar
    from ..backends.tensorrt.builder import build_plan
    from ..backends.tensorrt.environment import detect
    from ..backends.tensorrt.runner import TensorRTRunner

    env = detect()
    lo: dict[str, tuple[int, ...]] = {}
    hi: dict[str, tuple[int, ...]] = {}
    for k, name in enumerate(model.input_names):
        shapes = [case_shapes[k] for _, case_shapes in cases]
        lo[name] = tuple(min(s[i] for s in shapes) for i in range(len(shapes[0])))
        hi[name] = tuple(max(s[i] for s in shapes) for i in range(len(shapes[0])))
    profile = derive_profile(model.signature["inputs"], min_shapes=lo, opt_shapes=hi, max_shapes=hi)
    onnx_path = workdir / f"{backend}.onnx"
    onnx_path.write_bytes(data)
    result = build_plan(onnx_path, profile)
    plan = workdir / f"{backend}.plan"
    plan.write_bytes(result.plan)
    write_sidecar(plan, PlanSidecar(env.tensorrt_version, env.gpu_name, env.compute_capability, "", [profile.to_dict()],
                                    "", "", result.seconds))
    runner = TensorRTRunner(plan)
    runner.__enter__()
    return runner


def validation_cases(model: ExportedModel, batch_sizes: Sequence[int],
                     resolutions: Sequence[tuple[int, int]] | None) -> list[tuple[str, list[tuple[int, ...]]]]:
    """(label, one shape per input) for every batch size x resolution the graph accepts.

    Batch sizes apply to inputs with a dynamic batch axis; resolutions to image inputs (rank 4)
    with dynamic H and W. Without ``resolutions``: the traced one, plus 1.25x when H, W are dynamic.
    """
    traced, dynamic = model.traced_shapes, model.input_dynamic_axes()
    batch_dynamic = any(0 in d for d in dynamic)
    hw_dynamic = [len(s) == 4 and {2, 3} <= d for s, d in zip(traced, dynamic)]
    batches = list(batch_sizes) if batch_dynamic else [traced[0][0]]

    def scaled(shape: tuple[int, ...], hw: tuple[int, int] | None) -> tuple[int, ...]:
        return shape if hw is None else (*shape[:2], *hw)

    if resolutions is None:
        sizes: list[dict[int, tuple[int, int] | None]] = [{}]
        if any(hw_dynamic):
            sizes.append({i: tuple(max(8, int(round(d * 1.25 / 8)) * 8) for d in traced[i][2:])
                          for i, dyn in enumerate(hw_dynamic) if dyn})
    else:
        if not any(hw_dynamic):
            sizes = [{}]
        else:
            sizes = [{i: tuple(r) for i, dyn in enumerate(hw_dynamic) if dyn} for r in resolutions]
    cases = []
    for size in sizes:
        for n in batches:
            shapes = [tuple(scaled((n if 0 in d else s[0], *s[1:]), size.get(i)))
                      for i, (s, d) in enumerate(zip(traced, dynamic))]
            first = shapes[0]
            label = f"batch {n} @ {first[2]}x{first[3]}" if len(first) == 4 else f"batch {n}"
            cases.append((label, shapes))
    return cases


def validate(model: ExportedModel, *, precisions: Sequence[str] = ("fp32", "fp16", "int8"),
             backends: Sequence[str] = BACKENDS, batch_sizes: Sequence[int] = (1, 4),
             resolutions: Sequence[tuple[int, int]] | None = None, calibration: np.ndarray | None = None,
             calibration_label: str = "", accuracy_count: int = 1000,
             on_cell: Callable[[Cell], None] | None = None, eager=None) -> list[Cell]:
    """Run the matrix; cells are returned (and passed to ``on_cell``) as they finish.

    ``eager`` (a runner) replaces the eager model rebuilt from the export's metadata, e.g. a
    TorchRunner over the user's own module in memory.
    """
    from ..onnx_export.pipeline import random_feed, sample_feed
    from ..reference.evaluate import evaluate_heldout, heldout_batch

    cases = validation_cases(model, batch_sizes, resolutions)
    eager = eager or model.eager_runner()
    eager.__enter__()
    real = heldout_batch(64)[0] if model.is_reference_task else calibration
    if len(model.input_names) > 1:
        real = None  # sample_feed draws one image input; several inputs get seeded random data
    models = precision_models(model, precisions, calibration, calibration_label)
    cells = []
    with tempfile.TemporaryDirectory() as tmp:
        for precision in precisions:
            data = models[precision]
            for backend in backends:
                cell = Cell(backend, precision, "skipped")
                if isinstance(data, str):
                    cell.reason = data
                else:
                    try:
                        runner = _runner_for(backend, data, model, cases, Path(tmp))
                    except MissingDependencyError as exc:
                        cell.reason = str(exc)
                    else:
                        with runner:
                            _fill(cell, runner, eager, model, cases, precision,
                                  sample_feed(real) if real is not None else random_feed,
                                  evaluate_heldout if model.is_reference_task else None, accuracy_count)
                cells.append(cell)
                if on_cell:
                    on_cell(cell)
    return cells


def _fill(cell: Cell, runner, eager, model: ExportedModel, cases, precision: str, make_feed,
          evaluate, accuracy_count: int) -> None:
    from ..backends.base import cast_feed

    tolerance = tolerance_for(precision)
    classifier = bool(model.metadata.get("classifier") or model.classes) or model.metadata.get("num_classes") is not None
    cell.parity = compare_runners(eager, runner, cases, backend=cell.backend,
                                  precision=precision, tolerance=tolerance, classifier=classifier, make_feed=make_feed)
    cell.failures = cell.parity.failures()
    if evaluate is not None:
        name, logits = model.input_name, model.output_names[0]
        acc = evaluate(lambda x: runner.infer(cast_feed(runner, {name: x}))[logits].astype(np.float32),
                       reference=lambda x: eager.infer({name: x})[logits], count=accuracy_count)
        cell.accuracy = acc.to_dict()
        if acc.accuracy_drop_points > tolerance.max_accuracy_drop_points:
            cell.failures.append(f"held-out top-1 {100 * acc.top1:.1f}% is {acc.accuracy_drop_points:.1f} points below "
                                 f"eager's (tolerance {tolerance.max_accuracy_drop_points})")
    cell.status = "fail" if cell.failures else "pass"


def markdown_table(cells: Sequence[Cell]) -> str:
    rows = ["| backend | precision | result | worst scaled error | min cosine | min top-1 agreement | held-out top-1 (eager) |",
            "|---|---|---|---|---|---|---|"]
    for c in cells:
        if c.status == "skipped":
            rows.append(f"| {c.backend} | {c.precision} | skipped: {c.reason} | | | | |")
            continue
        outs = [o for case in c.parity.cases for o in case.outputs]
        agreements = [o.top1_agreement for o in outs if o.top1_agreement is not None]
        acc = c.accuracy
        rows.append(f"| {c.backend} | {c.precision} | {c.status}{': ' + '; '.join(c.failures) if c.failures else ''} "
                    f"| {max(o.scaled_error for o in outs):.2e} | {min(o.cosine for o in outs):.6f} "
                    f"| {f'{min(agreements):.3f}' if agreements else '-'} | "
                    + (f"{100 * acc['top1']:.1f}% ({100 * acc['reference_top1']:.1f}%)" if acc else "-") + " |")
    return "\n".join(rows) + "\n"
