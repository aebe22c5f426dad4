"""``export``: one orchestrator for every model source, composing the stages.

    source.build -> prepare -> plan parity (eager at every case) -> fold -> export -> simplify ->
    check -> optimize -> precision -> parity (ONNX Runtime vs eager) -> write

    import cbam_deploy
    report = cbam_deploy.export(model, (torch.randn(1, 3, 224, 224),), out="models", name="mynet")

Nothing is written unless every check passes (the folder is staged and published at the end).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ...errors import CheckFailedError, UsageError
from ...options import CALIBRATION_METHODS, DEFAULT_CALIBRATION_METHOD, DEFAULT_EXPORTER, DEFAULT_OPSET, \
    DEFAULT_REWRITES, DEFAULT_TARGET, DYNAMIC_MODES, EXPORTERS, KEEP_FLOAT_AUTO, MIN_OPSET, ONNX_PRECISIONS, TARGETS, \
    TRITON_MAX_BATCH
from ...progress import RichReporter, SilentReporter, StageReporter
from .sources import BuiltinSource, FactorySource, ModelSource, ModuleSource, SourceModel

__all__ = ["BuiltinSource", "ExportOptions", "ExportReport", "FactorySource", "ModuleSource", "export",
           "export_source"]


@dataclass
class ExportOptions:
    """How to export, whatever the model's source. ``None`` means "the default" where it says so."""

    out: str | Path = "models"
    name: str | None = None  # default: the source's name, plus _fp16/_int8
    precision: str = "fp32"
    dynamic: str = "batch"
    exporter: str = DEFAULT_EXPORTER
    opset: int = DEFAULT_OPSET
    simplify: bool = True
    optimize: bool | Sequence[str] = True  # True: the default rewrites; False: none; or rewrite names
    input_names: Sequence[str] | None = None
    output_names: Sequence[str] | None = None  # renames the flattened outputs, in order
    keep_io_types: bool = True
    calibration: np.ndarray | str | None = None  # INT8: an array, or a source as --calibration takes it
    calibration_label: str = ""
    #: where the model will run: INT8's Q/DQ flavor follows it (options.TARGET_INT8_FLAVOR)
    target: str = DEFAULT_TARGET
    calibration_method: str | None = DEFAULT_CALIBRATION_METHOD  # None: the INT8 flavor's default
    keep_float: Sequence[str] = ()  # PyTorch module names kept in float, or ["auto"]
    max_scaled_error: float | None = None  # overrides the gate (recorded)
    parity_shape: tuple[int, int] | None = None  # the untraced parity resolution (default: probed)
    triton_max_batch: int = TRITON_MAX_BATCH
    force: bool = False
    seed: int = 0

    def check(self) -> None:
        """One-line ``UsageError`` for a value no stage could use."""
        for value, valid, what in ((self.precision, ONNX_PRECISIONS, "precision"), (self.dynamic, DYNAMIC_MODES, "--dynamic mode"),
                                   (self.exporter, EXPORTERS, "exporter"), (self.target, TARGETS, "--target"),
                                   (self.calibration_method or CALIBRATION_METHODS[0], CALIBRATION_METHODS,
                                    "--calibration-method")):
            if value not in valid:
                raise UsageError(f"unknown {what} {value!r}; valid: {', '.join(valid)}")
        if self.opset < MIN_OPSET:
            raise UsageError(f"--opset {self.opset} is not supported; use {MIN_OPSET} or newer")
        if self.name is not None:  # "../x" would write outside --out
            from ...artifacts import check_name

            check_name(self.name)
        if self.max_scaled_error is not None and not self.max_scaled_error > 0:
            raise UsageError(f"--max-scaled-error must be positive, got {self.max_scaled_error}")
        if self.triton_max_batch < 1:
            raise UsageError(f"triton_max_batch must be at least 1, got {self.triton_max_batch}")
        if self.parity_shape is not None and (len(self.parity_shape) != 2 or min(self.parity_shape) < 1):
            raise UsageError(f"--parity-shape must be HxW with positive sizes, got {self.parity_shape}")
        if self.calibration is not None and self.precision == "fp32":
            raise UsageError("--calibration is only used with --precision int8 (or fp16, as parity inputs)")
        if self.keep_float and self.precision == "fp32":
            raise UsageError("--keep-float goes with --precision fp16 or int8 (an fp32 export is all float)")
        if KEEP_FLOAT_AUTO in self.keep_float and len(self.keep_float) > 1:
            raise UsageError("--keep-float auto chooses the modules itself; give either auto or module names")
        if self.precision == "int8" and self.calibration is None:
            raise UsageError("--precision int8 needs --calibration DIR|FILE.npy|reference|synthetic")

    @property
    def rewrites(self) -> list[str]:
        return list(DEFAULT_REWRITES) if self.optimize is True else list(self.optimize or [])


@dataclass
class ExportReport:
    """Everything an export did and measured; ``to_dict`` is what ``export.json`` holds."""

    name: str
    model_dir: Path
    onnx_path: Path
    report_path: Path
    size_bytes: int
    sha256: str
    ops_before_simplify: dict[str, int]
    ops_after_simplify: dict[str, int]
    fold: Any  # FoldReport
    parity: Any  # ParityReport
    metadata: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    ops_after_optimize: dict[str, int] = field(default_factory=dict)
    optimize: Any = None  # OptimizeReport
    parity_gate: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.parity.passed

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "onnx": str(self.onnx_path), "size_bytes": self.size_bytes, "sha256": self.sha256,
            "passed": self.passed, "metadata": self.metadata,
            "ops": {"before_simplify": self.ops_before_simplify, "after_simplify": self.ops_after_simplify,
                    "after_optimize": self.ops_after_optimize},
            "optimize": self.optimize.to_dict() if self.optimize is not None else {},
            "fold": self.fold.to_dict(),
            "parity": {**self.parity.to_dict(), "gate": self.parity_gate},
            "timings_s": {k: round(v, 3) for k, v in self.timings.items()}, "notes": self.notes, **self.extra,
        }


def _calibration(options: ExportOptions, source: SourceModel, reporter: StageReporter) -> tuple[np.ndarray | None, str]:
    """The INT8 calibration batch (or FP16's real parity inputs) the options name, loaded once."""
    if options.calibration is None:
        return None, ""
    if not isinstance(options.calibration, str):
        data = np.ascontiguousarray(options.calibration, dtype=np.float32)
        return data, options.calibration_label or f"array {list(data.shape)}"
    from ...precision.calibration import load_calibration

    pre = source.preprocessing
    data, label, warning = load_calibration(options.calibration, input_shape=tuple(source.example_inputs[0].shape),
                                            mean=pre.get("mean"), std=pre.get("std"),
                                            reference_task=source.reference_task, seed=options.seed,
                                            channel_order=pre.get("channel_order", "RGB"))
    if warning and options.precision != "int8":  # FP16 uses the data only as parity inputs
        warning = f"FP16 parity inputs are {label}: they do not reflect real inputs"
    if warning:
        reporter.note(warning)
    return data, label


def _parity_feed(options: ExportOptions, source: SourceModel, calibration: np.ndarray | None):
    """FP32 parity: seeded noise. FP16/INT8: real samples (the source's, else the calibration data)."""
    from ...compare.cases import random_feed, sample_feed

    real = source.parity_data if source.parity_data is not None else calibration
    if options.precision == "fp32" or real is None or len(source.example_inputs) != 1:
        return random_feed
    return sample_feed(real)


def export_source(source: ModelSource, options: ExportOptions | None = None, *,
                  reporter: StageReporter | None = None) -> ExportReport:
    """Build the model ``source`` describes and export it as ``options`` say; see the module docstring."""
    from ...artifacts import check_target, staged_directory

    options = options or ExportOptions()
    options.check()
    reporter = reporter or SilentReporter()
    if options.name:  # the target is known: refuse it before building (a --model factory runs the user's code)
        check_target(Path(options.out) / options.name, force=options.force)
    built = source.build(reporter)
    name = options.name or built.name + ("" if options.precision == "fp32" else f"_{options.precision}")
    target = Path(options.out) / name
    check_target(target, force=options.force)  # before any time is spent
    calibration, label = _calibration(options, built, reporter)
    with staged_directory(target, force=options.force) as staging:
        return _run_stages(built, options, reporter, staging, target, name, calibration, label)


@dataclass
class _Graph:
    """What the graph stages made: the final ONNX and the counts and reports along the way."""

    proto: Any
    folded: Any  # stages.Folded
    ops_exported: dict[str, int]
    ops_simplified: dict[str, int]
    ops_optimized: dict[str, int]
    optimized: Any  # OptimizeReport
    precision_details: dict[str, Any]


def _run_stages(built: SourceModel, options: ExportOptions, reporter: StageReporter, staging: Path, target: Path,
                name: str, calibration: np.ndarray | None, calibration_label: str) -> ExportReport:
    from . import parity as par
    from . import stages as st
    from ...compare.cases import random_feed
    from ...onnx_export.graph import io_signature
    from ...onnx_export.metadata import set_metadata

    with reporter.stage("cases", "eager at every parity shape"):
        prepared = st.prepare(built.model, built.example_inputs, dynamic=options.dynamic, classifier=built.classifier,
                              input_names=options.input_names, output_names=options.output_names)
        feed = _parity_feed(options, built, calibration)
        # With seeded noise as parity inputs, the example inputs (seeded noise too) are one case already run.
        known = ({n: x.numpy() for n, x in zip(prepared.input_names, prepared.inputs)}, prepared.expected) \
            if feed is random_feed else None
        plan = par.plan_parity(prepared.eager, prepared.specs, prepared.shapes, prepared.axes, prepared.output_names,
                               make_feed=feed, parity_shape=options.parity_shape, known=known)
    g = _graph_stages(prepared, plan, options, reporter, calibration, calibration_label, built)
    meta = st.metadata(prepared, built.metadata, opset=options.opset, precision_name=options.precision,
                       classifier=built.classifier, exporter=options.exporter, rewrites=g.optimized.applied)
    meta.update(_target_metadata(options))
    untraced = [shapes for label, shapes in plan.cases if "not traced" in label]
    if untraced:  # the resolution the model accepted: cbam-validate checks there too
        meta["parity_resolution"] = list(next(s for s in untraced[0] if len(s) == 4)[2:])
    if g.precision_details:
        meta["precision_details"] = g.precision_details
    set_metadata(g.proto, meta)
    data = g.proto.SerializeToString()
    with reporter.stage("parity", f"eager vs ONNX Runtime CPU, {options.precision}, {len(plan.cases)} cases"):
        result = par.parity(plan, data, precision=options.precision, classifier=built.classifier, eager=prepared.eager,
                            max_scaled_error=options.max_scaled_error)
    for note in result.notes:
        reporter.note(note)
    if not result.report.passed:
        from ..localize import localization_note  # where it stops matching: the first diverging module

        raise CheckFailedError(par.parity_failure(result) + localization_note(
            data, prepared.eager, plan.feeds[0], precision=options.precision, tolerance=result.report.tolerance))
    extra = built.task_results(data, prepared.eager, prepared.output_names) if built.task_results else {}
    with reporter.stage("write", "model.onnx, config.pbtxt, export.json"):
        written = st.write(staging, target, name, data, io_signature(g.proto), meta,
                           triton_max_batch=options.triton_max_batch)
        report = ExportReport(
            name=name, model_dir=target, onnx_path=written.onnx_path, report_path=written.report_path,
            size_bytes=written.size_bytes, sha256=written.sha256, ops_before_simplify=g.ops_exported,
            ops_after_simplify=g.ops_simplified, fold=g.folded.report,
            parity=result.report, metadata=meta, notes=list(getattr(reporter, "notes", [])),
            extra={**extra, "triton_config": str(written.config_path)}, ops_after_optimize=g.ops_optimized,
            optimize=g.optimized, parity_gate=result.gate.to_dict())
        report.timings = dict(getattr(reporter, "timings", {}))
        report.timings["total"] = sum(v for k, v in report.timings.items() if k != "total")
        st.write_report(staging, report.to_dict())
    return report


def _graph_stages(prepared, plan, options: ExportOptions, reporter: StageReporter, calibration: np.ndarray | None,
                  calibration_label: str, built: SourceModel) -> _Graph:
    """fold -> export -> simplify -> check -> optimize -> precision."""
    from . import stages as st
    from ...onnx_export import graph
    from ...onnx_export.graph import op_counts

    with reporter.stage("fold", "BatchNorm into Conv/Linear"):
        folded = st.fold(prepared)
    if folded.pooling_rewrites:
        reporter.note(f"{folded.pooling_rewrites} pooling calls that pin the map's size rewritten (whole-map kernels "
                      "from x.size(), adaptive pooling to sizes other than 1), so height and width stay dynamic")
    with reporter.stage("export", f"{options.exporter} exporter, opset {options.opset}, dynamic {options.dynamic}"):
        exported = st.export(folded, prepared, exporter=options.exporter, opset=options.opset, dynamic=options.dynamic,
                             expected=plan.expected)
    for line in exported.warnings:
        reporter.note(f"TorchScript tracer: {line} (the graph may be frozen there; parity at other shapes checks "
                      "it, and --exporter dynamo refuses such code instead)")
    proto = exported.proto
    if options.simplify:
        with reporter.stage("simplify", "onnxsim"):
            proto = st.simplify(proto)
    ops_simplified = op_counts(proto)
    with reporter.stage("check", "onnx.checker full check, shape inference"):
        proto, notes = st.check(proto, folded.report, simplified=options.simplify)
        graph.globalize_whole_map_pools(proto)  # TorchScript: AdaptiveMaxPool2d(1) at a static size -> MaxPool
    folded.report.settle(graph_batchnorms=0)  # the check passed: the exporter fused what we did not fold
    for note in [*folded.report.notes(), *notes]:
        reporter.note(note)
    with reporter.stage("optimize", f"CBAM-aware rewrites: {', '.join(options.rewrites) or 'none'}"):
        proto, optimized = st.optimize(proto, options.rewrites)
    ops_optimized = op_counts(proto)
    details: dict[str, Any] = {}
    if options.precision != "fp32":
        from .keep_float import precision_stage

        proto, details = precision_stage(proto, options, reporter, prepared=prepared, plan=plan, built=built,
                                         calibration=calibration, calibration_label=calibration_label)
    return _Graph(proto, folded, exported.ops, ops_simplified, ops_optimized, optimized, details)


def _target_metadata(options: ExportOptions) -> dict[str, Any]:
    """The target always; INT8's flavor and calibration method with INT8."""
    from ...options import TARGET_INT8_FLAVOR, calibration_method_for

    meta: dict[str, Any] = {"target": options.target}
    if options.precision == "int8":
        meta["int8_flavor"] = TARGET_INT8_FLAVOR[options.target]
        meta["calibration_method"] = calibration_method_for(meta["int8_flavor"], options.calibration_method)
    if options.keep_float:
        meta["keep_float"] = list(options.keep_float)
    return meta


def export(model, example_inputs, *, out: str | Path = "models", name: str | None = None, precision: str = "fp32",
           dynamic: str = "batch", exporter: str = DEFAULT_EXPORTER, input_names: Sequence[str] | None = None,
           output_names: Sequence[str] | None = None, calibration: np.ndarray | str | None = None,
           calibration_label: str = "", keep_io_types: bool = True, opset: int = DEFAULT_OPSET,
           simplify: bool = True, force: bool = False, classifier: bool = False,
           max_scaled_error: float | None = None, metadata: Mapping[str, Any] | None = None,
           optimize: bool | Sequence[str] = True, parity_shape: tuple[int, int] | None = None,
           progress: bool = False, reporter: StageReporter | None = None, target: str = DEFAULT_TARGET,
           keep_float: Sequence[str] = (), calibration_method: str | None = DEFAULT_CALIBRATION_METHOD,
           options: ExportOptions | None = None) -> ExportReport:
    """Fold, export, simplify, check and prove parity for any eval-mode model; write ``out/name/``.

    ``example_inputs``: tensors (or shapes) in the order ``forward`` takes them. Outputs may be any
    nest of dicts, tuples and lists of tensors (named by their path; ``output_names`` renames).
    ``calibration`` (INT8): a preprocessed N x C x H x W float32 array, or a source string as
    ``--calibration`` takes it. ``target`` (where it will run) picks INT8's Q/DQ flavor; ``keep_float``:
    PyTorch module names kept in float, or ``["auto"]``. ``classifier`` adds top-1 agreement to parity. ``options`` replaces
    all the keyword options at once. Raises ``CheckFailedError`` (nothing written) when a check fails.
    """
    if options is None:
        options = ExportOptions(out=out, name=name, precision=precision, dynamic=dynamic, exporter=exporter,
                                opset=opset, simplify=simplify, optimize=optimize, input_names=input_names,
                                output_names=output_names, keep_io_types=keep_io_types, calibration=calibration,
                                calibration_label=calibration_label, max_scaled_error=max_scaled_error,
                                parity_shape=parity_shape, force=force, target=target, keep_float=list(keep_float),
                                calibration_method=calibration_method)
    source = ModuleSource(model, example_inputs, classifier=classifier, metadata=dict(metadata or {}))
    return export_source(source, options, reporter=reporter or (RichReporter() if progress else SilentReporter()))

