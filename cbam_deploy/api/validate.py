"""``validate``: eager against every backend x precision available here, at several batch sizes and
resolutions, with held-out accuracy per cell for reference-task models.

A backend or precision that cannot run here is a ``skipped: <reason>`` cell, never a pass. Every
cell opens its runner once (one ONNX Runtime session, one engine) and closes it when done.
"""

from __future__ import annotations

import tempfile
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..compare import ParityReport, compare_runners, tolerance_for
from ..errors import IntegrityError, MissingDependencyError, UsageError
from ..layout import is_reference_task
from ..model_dir import ExportedModel
from ..options import BACKENDS, PRECISIONS


@dataclass
class Cell:
    """One backend x precision: pass, fail (with the reasons) or skipped (with why)."""

    backend: str
    precision: str
    status: str  # "pass" | "fail" | "skipped"
    reason: str = ""
    parity: ParityReport | None = None
    accuracy: dict[str, Any] | None = None
    failures: list[str] = field(default_factory=list)
    flavor: str = ""  # INT8's Q/DQ flavor (u8s8, s8s8)

    @property
    def label(self) -> str:
        return f"{self.backend} {self.precision}" + (f" ({self.flavor})" if self.flavor else "")

    def to_dict(self) -> dict[str, Any]:
        return {"backend": self.backend, "precision": self.precision, "flavor": self.flavor or None, "status": self.status, "reason": self.reason,
                "failures": self.failures, "accuracy": self.accuracy,
                "parity": self.parity.to_dict() if self.parity else None}


@dataclass
class ValidationReport:
    """Every cell of the matrix; ``localization`` when a failure was localized (or it was asked for)."""

    cells: list[Cell]
    localization: Any = None
    #: Set when model.onnx does not match the SHA-256 its export recorded: the file was still
    #: validated (comparing it with eager is what shows how it changed), and the report fails.
    integrity_problem: str = ""

    @property
    def passed(self) -> bool:
        """Every cell that could run passed, at least one ran, and the file is the one exported."""
        return (any(c.status == "pass" for c in self.cells) and not any(c.status == "fail" for c in self.cells)
                and not self.integrity_problem)

    def failures(self) -> list[str]:
        cells = [f"{c.label}: {c.failures[0]}" for c in self.cells if c.status == "fail"]
        return ([self.integrity_problem] if self.integrity_problem else []) + cells

    def to_dict(self) -> dict[str, Any]:
        loc = self.localization.to_dict() if self.localization is not None else None
        return {"passed": self.passed, "integrity_problem": self.integrity_problem or None,
                "cells": [c.to_dict() for c in self.cells], "localization": loc}


def precision_models(model: ExportedModel, precisions: Sequence[str], calibration: np.ndarray | None,
                     calibration_label: str, int8_flavor: str | None = None) -> dict[str, bytes | str]:
    """Serialized model per precision (or the reason it cannot be made), derived from the FP32 export;
    INT8 in ``int8_flavor`` (default: the flavor of the export's target, see ``int8_flavor_for``)."""
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
        elif precision == "bf16":  # the FP32 file, compiled in bf16 by a backend that runs it natively
            out[precision] = model.proto.SerializeToString()
        elif calibration is None:
            out[precision] = "no calibration data (pass --calibration DIR|FILE.npy|synthetic)"
        else:
            out[precision] = quantize_int8(model.proto, calibration, calibration_label=calibration_label,
                                           flavor=int8_flavor or int8_flavor_for(model))[0].SerializeToString()
    return out


def int8_flavor_for(model: ExportedModel, backend: str | None = None) -> str:
    """The INT8 flavor a cell times/validates: the backend's, else the export's (its target's)."""
    from ..options import BACKEND_INT8_FLAVOR, DEFAULT_TARGET, TARGET_INT8_FLAVOR

    if backend in BACKEND_INT8_FLAVOR:
        return BACKEND_INT8_FLAVOR[backend]
    return model.metadata.get("int8_flavor") or TARGET_INT8_FLAVOR[model.metadata.get("target", DEFAULT_TARGET)]


def _cell_model(model: ExportedModel, models: dict[str, bytes | str], precision: str, backend: str,
                calibration: np.ndarray | None, calibration_label: str) -> tuple[bytes | str, str]:
    """A cell's model and INT8 flavor: an INT8 export as it is; INT8 derived from FP32 in the backend's."""
    if precision != "int8":
        return models[precision], ""
    if model.metadata.get("precision") == "int8":
        return models[precision], model.metadata.get("int8_flavor", "s8s8")
    flavor = int8_flavor_for(model, backend)
    if flavor == int8_flavor_for(model):
        return models[precision], flavor
    return precision_models(model, ["int8"], calibration, calibration_label, flavor)["int8"], flavor


def _check_choices(values: Sequence[str], valid: Sequence[str], what: str) -> None:
    bad = [v for v in values if v not in valid]
    if bad or not values:
        raise UsageError(f"unknown {what} {', '.join(bad) or '(none given)'}; valid: {', '.join(valid)}")


def validate(model: str | Path | ExportedModel, *, eager=None, precisions: Sequence[str] = ("fp32", "fp16"),
             backends: Sequence[str] = ("onnxruntime-cpu",), batch_sizes: Sequence[int] = (1, 4),
             resolutions: Sequence[tuple[int, int]] | None = None, calibration: np.ndarray | None = None,
             calibration_label: str = "", accuracy_count: int = 1000, trust_model_code: bool = False,
             verify: bool = True, localize: bool = False,
             on_cell: Callable[[Cell], None] | None = None) -> ValidationReport:
    """Run the matrix; cells are returned (and passed to ``on_cell``) as they finish.

    ``eager``: your ``nn.Module`` to compare against; by default the model is rebuilt from the export's
    metadata (a user's factory only with ``trust_model_code=True``). ``localize``: after a failed
    FP32/FP16/INT8 ONNX Runtime cell (or always, when asked), find the first module that diverges.
    ``verify``: a model.onnx that no longer matches its export's SHA-256 is still validated (that
    is how to see what changed) and the report fails with the mismatch as its first failure.
    """
    from ..compare.cases import validation_cases

    _check_choices(precisions, PRECISIONS, "precision")
    _check_choices(backends, BACKENDS, "backend")
    if any(int(b) <= 0 for b in batch_sizes) or not batch_sizes:
        raise UsageError(f"batch sizes must be positive integers, got {list(batch_sizes)}")
    if accuracy_count <= 0:
        raise UsageError(f"accuracy_count must be positive, got {accuracy_count}")
    exported = open_for_validation(model, trust_model_code=trust_model_code, verify=verify)
    integrity_problem = exported.integrity.removeprefix(MISMATCH) if exported.integrity.startswith(MISMATCH) else ""
    cases = validation_cases(exported, batch_sizes, resolutions)
    models = precision_models(exported, precisions, calibration, calibration_label)
    make_feed = _feed_maker(exported, calibration)
    cells: list[Cell] = []
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        reference = stack.enter_context(exported.eager_runner(eager))
        for precision in precisions:
            for backend in backends:
                data, flavor = _cell_model(exported, models, precision, backend, calibration, calibration_label)
                cell = _run_cell(exported, reference, backend, precision, data, cases, make_feed,
                                 Path(tmp), accuracy_count)
                cell.flavor = flavor
                cells.append(cell)
                if on_cell:
                    on_cell(cell)
        report = ValidationReport(cells, integrity_problem=integrity_problem)
        if localize or not report.passed:
            report.localization = _localize(reference, cells, models, cases, make_feed, forced=localize)
    return report


MISMATCH = "mismatch: "


def open_for_validation(model: str | Path | ExportedModel, *, trust_model_code: bool = False,
                        verify: bool = True) -> ExportedModel:
    """The model folder as validation opens it: a file that fails its SHA-256 check is opened anyway
    (comparing it with eager shows what changed), with ``integrity`` saying ``mismatch: <why>``."""
    if isinstance(model, ExportedModel):
        return model
    try:
        return ExportedModel.open(model, trust_model_code=trust_model_code, verify=verify)
    except IntegrityError as exc:
        opened = ExportedModel.open(model, trust_model_code=trust_model_code, verify=False)
        opened.integrity = MISMATCH + str(exc)
        return opened


def _run_cell(model: ExportedModel, reference, backend: str, precision: str, data: bytes | str, cases, make_feed,
              workdir: Path, accuracy_count: int) -> Cell:
    """Open the backend's runner once, compare it with eager on every case, close it."""
    from .build import open_cell_runner  # ONNX Runtime, or a TensorRT plan + sidecar built by api.build

    cell = Cell(backend, precision, "skipped")
    if isinstance(data, str):
        cell.reason = data
        return cell
    options = {}
    if precision == "bf16":
        from ..backends import BACKENDS as TABLE

        if not TABLE[backend].bf16:
            cell.reason = (f"{backend} has no native bf16 (bf16 runs on: "
                           f"{', '.join(b for b, e in TABLE.items() if e.bf16)})")
            return cell
        options["precision"] = "bf16"
    with ExitStack() as stack:
        try:  # a quiet probe first, then the cell's one session/engine; a provider that cannot run is a skip
            runner = stack.enter_context(open_cell_runner(backend, data, model, cases, workdir, **options))
        except MissingDependencyError as exc:
            cell.reason = str(exc)
            return cell
        _fill(cell, runner, reference, model, cases, precision, make_feed, accuracy_count)
    return cell


def _feed_maker(model: ExportedModel, calibration: np.ndarray | None):
    """Real samples where the model has them (held-out images for the reference task), else seeded noise."""
    from ..compare.cases import random_feed, sample_feed

    if len(model.input_names) > 1:
        return random_feed  # sample_feed draws one image input; several inputs get seeded random data
    if is_reference_task(model.metadata):
        from ..reference.evaluate import heldout_batch

        return sample_feed(heldout_batch(64)[0])
    return sample_feed(calibration) if calibration is not None else random_feed


def _fill(cell: Cell, runner, reference, model: ExportedModel, cases, precision: str, make_feed,
          accuracy_count: int) -> None:
    from ..backends.base import cast_feed

    tolerance = tolerance_for(precision)
    meta = model.metadata
    classifier = bool(meta.get("classifier") or model.classes) or meta.get("num_classes") is not None
    try:
        cell.parity = compare_runners(reference, runner, cases, backend=cell.backend, precision=precision,
                                      tolerance=tolerance, classifier=classifier, make_feed=make_feed,
                                      floor=lambda feeds: _float32_floor(reference, feeds))
    except IntegrityError as exc:  # NaN/Inf out of finite inputs (e.g. FP16 overflow): this cell fails, the rest run
        cell.failures, cell.status = [str(exc)], "fail"
        _explain_fp16(cell, model, reference, cases, make_feed)
        return
    cell.failures = cell.parity.failures()
    if cell.failures:
        _explain_fp16(cell, model, reference, cases, make_feed)
    if is_reference_task(meta):
        from ..reference.evaluate import evaluate_heldout

        name, logits = model.input_name, model.output_names[0]
        acc = evaluate_heldout(lambda x: runner.infer(cast_feed(runner, {name: x}))[logits].astype(np.float32),
                               reference=lambda x: reference.infer({name: x})[logits], count=accuracy_count)
        cell.accuracy = acc.to_dict()
        if acc.accuracy_drop_points > tolerance.max_accuracy_drop_points:
            cell.failures.append(f"held-out top-1 {100 * acc.top1:.1f}% is {acc.accuracy_drop_points:.1f} points below "
                                 f"eager's (tolerance {tolerance.max_accuracy_drop_points})")
    cell.status = "fail" if cell.failures else "pass"


def _explain_fp16(cell: Cell, model: ExportedModel, reference, cases, make_feed) -> None:
    """A failed FP16 cell derived from FP32: range analysis says which output overflowed and where."""
    if cell.precision != "fp16" or model.metadata.get("precision", "fp32") != "fp32":
        return
    from .export.precision import overflow_diagnosis

    feed = make_feed(reference.input_specs(), cases[0][1], np.random.default_rng(0))
    cell.failures += [d for d in [overflow_diagnosis(model.proto, [feed], reference.model)] if d]


def _float32_floor(reference, feeds: list[dict[str, np.ndarray]]) -> float:
    """float32 eager's own error on ``feeds`` (float64 copy of the reference module)."""
    from ..compare.conditioning import float32_floor

    return float32_floor(reference.model, feeds, [s.name for s in reference.input_specs()])


def _localize(reference, cells: Sequence[Cell], models: dict[str, bytes | str], cases, make_feed, *, forced: bool):
    """Localize the first failed ONNX Runtime CPU cell (or, when forced, the first cell that ran)."""
    # An FP16 overflow found by range analysis is explained already: localizing it would blame a module kept FP32.
    candidates = [c for c in cells if c.status == "fail" and c.backend == "onnxruntime-cpu"
                  and not any("overflows FP16" in f for f in c.failures)]
    if forced and not candidates:
        candidates = [c for c in cells if c.status != "skipped" and c.backend == "onnxruntime-cpu"]
    if not candidates:
        return None
    from .localize import localize

    cell = candidates[0]
    shapes = cases[0][1]
    feed = make_feed(reference.input_specs(), shapes, np.random.default_rng(0))
    return localize(models[cell.precision], reference.model, feed, precision=cell.precision,
                    tolerance=tolerance_for(cell.precision))


def markdown_table(cells: Sequence[Cell]) -> str:
    """The matrix as a Markdown table (what ``--markdown`` writes)."""
    rows = ["| backend | precision | result | worst scaled error | min cosine | min top-1 agreement | held-out top-1 (eager) |",
            "|---|---|---|---|---|---|---|"]
    for c in cells:
        if c.status == "skipped":
            rows.append(f"| {c.backend} | {c.precision} | skipped: {c.reason} | | | | |")
            continue
        if c.parity is None:  # failed before any comparison (e.g. NaN/Inf outputs)
            rows.append(f"| {c.backend} | {c.precision} | fail: {'; '.join(c.failures)} | | | | |")
            continue
        outs = [o for case in c.parity.cases for o in case.outputs]
        agreements = [o.top1_agreement for o in outs if o.top1_agreement is not None]
        acc = c.accuracy
        rows.append(f"| {c.backend} | {c.precision} | {c.status}{': ' + '; '.join(c.failures) if c.failures else ''} "
                    f"| {max(o.scaled_error for o in outs):.2e} | {min(o.cosine for o in outs):.6f} "
                    f"| {f'{min(agreements):.3f}' if agreements else '-'} | "
                    + (f"{100 * acc['top1']:.1f}% ({100 * acc['reference_top1']:.1f}%)" if acc else "-") + " |")
    return "\n".join(rows) + "\n"
