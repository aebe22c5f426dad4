"""The export stage end to end: fold -> export -> simplify -> check -> optimize -> metadata -> parity ->
write (ONNX, report, Triton config).

Works on any eval-mode ``nn.Module``: the CLI's built-in hosts and users' own networks alike.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ..artifacts import atomic_write_text, staged_directory
from ..backends.base import TensorSpec
from ..backends.onnxruntime import OnnxRuntimeRunner
from ..backends.torch_eager import TorchRunner
from ..compare import ParityReport, compare_runners, tolerance_for
from ..errors import CheckFailedError, UsageError
from ..fold import FoldReport, fold_batchnorms
from ..optimize import DEFAULT_REWRITES, OptimizeReport, globalize_pooling, optimize_graph
from ..progress import SilentReporter, StageReporter
from . import graph
from .metadata import package_versions, set_metadata
from .torch_to_onnx import DEFAULT_OPSET, dynamic_axes_for, export_to_onnx

MODEL_FILE = "model.onnx"
REPORT_FILE = "export.json"
VERSION_DIR = "1"
PARITY_SEED = 0


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
    fold: FoldReport
    fold_scaled_error: float
    parity: ParityReport
    metadata: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    ops_after_optimize: dict[str, int] = field(default_factory=dict)
    optimize: OptimizeReport = field(default_factory=OptimizeReport)

    @property
    def passed(self) -> bool:
        return self.parity.passed

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "onnx": str(self.onnx_path), "size_bytes": self.size_bytes, "sha256": self.sha256,
            "passed": self.passed, "metadata": self.metadata,
            "ops": {"before_simplify": self.ops_before_simplify, "after_simplify": self.ops_after_simplify,
                    "after_optimize": self.ops_after_optimize},
            "optimize": self.optimize.to_dict(),
            "fold": {**self.fold.to_dict(), "scaled_error_vs_unfolded": self.fold_scaled_error},
            "parity": self.parity.to_dict(), "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
            "notes": self.notes, **self.extra,
        }


def parity_shapes(trace_shapes: Sequence[tuple[int, ...]], axes: Sequence[Mapping[int, str]]) -> list[tuple[str, list[tuple[int, ...]]]]:
    """The parity cases: two batch sizes when batch is dynamic, and another resolution when H, W are.

    Never only the traced shape: an exporter that baked a size into the graph must be caught.
    """
    def with_batch(shapes: Sequence[tuple[int, ...]], n: int) -> list[tuple[int, ...]]:
        return [(n, *s[1:]) if 0 in a else tuple(s) for s, a in zip(shapes, axes)]

    cases = []
    batch_dynamic = any(0 in a for a in axes)
    batches = [1, 3] if batch_dynamic else [trace_shapes[0][0]]
    for n in batches:
        shapes = with_batch(trace_shapes, n)
        cases.append((f"batch {n} @ {'x'.join(map(str, shapes[0][2:]))}" if len(shapes[0]) > 2 else f"batch {n}", shapes))
    if any(len(s) >= 4 and (len(s) - 2) in a for s, a in zip(trace_shapes, axes)):
        def other(dim: int) -> int:  # 1.25x, rounded to a multiple of 8 so strided nets stay exact
            return max(8, int(round(dim * 1.25 / 8)) * 8)

        shapes = [(*s[:-2], other(s[-2]), other(s[-1])) if (len(s) - 2) in a else tuple(s)
                  for s, a in zip(with_batch(trace_shapes, 2), axes)]
        cases.append((f"batch {shapes[0][0]} @ {shapes[0][-2]}x{shapes[0][-1]} (not traced)", shapes))
    return cases


FeedMaker = Callable[[Sequence[TensorSpec], Sequence[tuple[int, ...]], np.random.Generator], dict[str, np.ndarray]]


def random_feed(specs: Sequence[TensorSpec], shapes: Sequence[tuple[int, ...]], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Seeded standard-normal inputs: enough for FP32, where only arithmetic is compared."""
    return {s.name: rng.standard_normal(shape).astype(np.float32) for s, shape in zip(specs, shapes)}


def sample_feed(data: np.ndarray) -> FeedMaker:
    """Inputs drawn from real samples (N x C x H x W), resized when a case asks for another size.

    FP16/INT8 parity needs in-distribution inputs: an INT8 model calibrated on images saturates on
    random noise, which would measure the noise, not the model.
    """
    import torch.nn.functional as F

    def make(specs: Sequence[TensorSpec], shapes: Sequence[tuple[int, ...]], rng: np.random.Generator) -> dict[str, np.ndarray]:
        (spec,), (shape,) = specs, shapes
        rows = data[rng.integers(0, len(data), size=shape[0])]
        if rows.shape[2:] != tuple(shape[2:]):
            rows = F.interpolate(torch.from_numpy(rows), size=tuple(shape[2:]), mode="bilinear", align_corners=False).numpy()
        return {spec.name: np.ascontiguousarray(rows, dtype=np.float32)}

    return make


def run_parity(reference: TorchRunner, candidate_model: bytes | str | Path, cases, *, precision: str,
               classifier: bool, provider: str = "cpu", make_feed: FeedMaker = random_feed,
               max_scaled_error: float | None = None) -> ParityReport:
    """Run the same seeded inputs through eager and ONNX Runtime and compare every output.

    ``max_scaled_error`` overrides the table's value for this run (explicit, and recorded).
    """
    tolerance = tolerance_for(precision)
    if max_scaled_error is not None:
        tolerance = dataclasses.replace(tolerance, max_scaled_error=max_scaled_error)
    with reference, OnnxRuntimeRunner(candidate_model, provider=provider) as ort_runner:
        return compare_runners(reference, ort_runner, cases, backend=f"onnxruntime[{provider}]", precision=precision,
                               tolerance=tolerance, classifier=classifier, make_feed=make_feed, seed=PARITY_SEED)


def _scaled_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / (b.abs().max().clamp_min(1e-12)))


def export_model(
    model: nn.Module,
    example_inputs: Sequence[torch.Tensor],
    *,
    name: str,
    out: str | Path = "models",
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    dynamic: str = "batch",
    opset: int = DEFAULT_OPSET,
    simplify: bool = True,
    force: bool = False,
    classifier: bool = False,
    metadata: Mapping[str, Any] | None = None,
    reporter: StageReporter | None = None,
    precision: str = "fp32",
    keep_io_types: bool = True,
    calibration: np.ndarray | None = None,
    calibration_label: str = "",
    parity_data: np.ndarray | None = None,
    max_scaled_error: float | None = None,
    optimize: bool | Sequence[str] = True,
    triton_max_batch: int = 8,
    after_parity: Callable[[bytes, TorchRunner], dict[str, Any]] | None = None,
) -> ExportReport:
    """Export an eval-mode model to ``out/name/1/model.onnx`` with ``out/name/export.json``.

    ``precision`` fp16 keeps CBAM's attention in FP32; int8 needs ``calibration`` (preprocessed
    N x C x H x W float32). ``parity_data`` (real samples) replaces random parity inputs; FP16/INT8
    parity should have it. Raises ``CheckFailedError`` (nothing written) when a check fails:
    exporter error, BatchNorm left in the graph, onnx.checker, onnxsim's check, or parity against
    eager beyond the precision's tolerance. ``after_parity`` may add task-level results (e.g.
    accuracy) to the report before it is written. ``optimize``: the CBAM-aware graph rewrites
    (True = the default set, False = none, or a list of rewrite names; see ``optimize/``).
    ``out/name/config.pbtxt`` makes the folder a Triton model (max batch ``triton_max_batch`` when
    the batch axis is dynamic).
    """
    from ..precision import PRECISIONS

    if precision not in PRECISIONS:
        raise UsageError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    if precision == "int8" and calibration is None:
        raise UsageError("INT8 needs calibration data: a preprocessed N x C x H x W float32 batch")
    reporter = reporter or SilentReporter()
    if model.training:
        raise UsageError("the model is in training mode; call model.eval() before exporting")
    example_inputs = tuple(example_inputs)
    input_names = list(input_names or (["input"] if len(example_inputs) == 1 else [f"input_{i}" for i in range(len(example_inputs))]))
    if len(input_names) != len(example_inputs):
        raise UsageError(f"{len(input_names)} input names for {len(example_inputs)} example inputs")
    try:
        with torch.no_grad():
            eager_out = model(*example_inputs)
    except Exception as exc:  # the user's forward rejected the inputs: say where, in one line
        from ..models.user_model import describe_exception

        shapes = ", ".join("x".join(map(str, x.shape)) for x in example_inputs)
        raise UsageError(f"the model's forward failed on example input(s) of shape {shapes} "
                         f"{describe_exception(exc)}") from exc
    eager_outs = eager_out if isinstance(eager_out, (tuple, list)) else (eager_out,)
    output_names = list(output_names or (["logits"] if classifier and len(eager_outs) == 1 else
                                         ["output"] if len(eager_outs) == 1 else [f"output_{i}" for i in range(len(eager_outs))]))
    if len(output_names) != len(eager_outs):
        raise UsageError(f"{len(output_names)} output names for a model with {len(eager_outs)} outputs")
    if not all(isinstance(o, torch.Tensor) for o in eager_outs):
        kinds = ", ".join(sorted({type(o).__name__ for o in eager_outs}))
        raise UsageError(f"the model returns {kinds}; ONNX export needs a tensor or a tuple/list of tensors "
                         "(wrap the model to return its outputs as a tuple)")
    if dynamic in ("hw", "all") and not any(x.dim() >= 4 for x in example_inputs):
        raise UsageError(f"--dynamic {dynamic} needs an N x C x H x W input; the inputs have ranks "
                         f"{', '.join(str(x.dim()) for x in example_inputs)}")
    # H and W are dynamic only for image inputs; other inputs (e.g. a feature vector) keep the batch axis.
    low_rank_mode = {"all": "batch", "hw": "none"}.get(dynamic, dynamic)
    axes = [dynamic_axes_for(dynamic if x.dim() >= 4 else low_rank_mode, x.dim()) for x in example_inputs]
    # torch.export specialises a size-1 dimension to a constant: trace a dynamic batch at 2.
    trace_inputs = tuple(x.expand(2, *x.shape[1:]).contiguous() if 0 in a and x.shape[0] == 1 else x
                         for x, a in zip(example_inputs, axes))
    target = Path(out) / name
    with staged_directory(target, force=force) as staging:
        with reporter.stage("fold", "BatchNorm into Conv/Linear"):
            folded, fold_report = fold_batchnorms(model)
            with torch.no_grad():
                folded_out = folded(*example_inputs)
            folded_outs = folded_out if isinstance(folded_out, (tuple, list)) else (folded_out,)
            fold_error = max(_scaled_error(f, e) for f, e in zip(folded_outs, eager_outs))
        for bn, why in fold_report.unfolded.items():
            reporter.note(f"BatchNorm {bn} not folded: {why}")
        if any(axis != 0 for a in axes for axis in a):
            # H/W are dynamic: pooling with a kernel taken from x.size() would pin them.
            folded, pooling_rewrites = globalize_pooling(folded)
            if pooling_rewrites:
                reporter.note(f"{len(pooling_rewrites)} whole-map pooling calls with a size-derived kernel made "
                              "adaptive, so height and width stay dynamic")

        with reporter.stage("export", f"torch.onnx.export, opset {opset}, dynamic {dynamic}"):
            proto = export_to_onnx(folded, trace_inputs, input_names=input_names, output_names=output_names,
                                   dynamic_axes=axes, opset=opset)
            ops_before = graph.op_counts(proto)
            fixed = graph.specialized_axes(proto, dict(zip(input_names, axes)))
            if fixed:
                raise CheckFailedError(
                    f"--dynamic {dynamic} asked for dynamic axes the exporter made fixed ({', '.join(fixed)}): the "
                    "model's code ties them to the traced size (e.g. a pooling kernel taken from x.size()); "
                    "use adaptive/global pooling there, or a --dynamic mode without those axes")
        if simplify:
            with reporter.stage("simplify", "onnxsim"):
                proto = graph.simplify(proto)
        ops_after = graph.op_counts(proto)
        with reporter.stage("check", "onnx.checker full check, shape inference"):
            proto = graph.check(proto)
            forbidden = graph.forbidden_ops(proto)
            if forbidden.get("BatchNormalization"):
                raise CheckFailedError(f"the exported graph still has {forbidden['BatchNormalization']} "
                                       f"BatchNormalization nodes (unfolded: {', '.join(fold_report.unfolded) or 'none reported'})")
            if forbidden.get("Identity"):
                message = f"the exported graph has {forbidden['Identity']} Identity nodes"
                if simplify:
                    raise CheckFailedError(message)
                reporter.note(message + " (simplification is off)")

        rewrites = list(DEFAULT_REWRITES) if optimize is True else list(optimize or [])
        optimize_report = OptimizeReport()
        if rewrites:
            with reporter.stage("optimize", f"CBAM-aware rewrites: {', '.join(rewrites)}"):
                proto, optimize_report = optimize_graph(proto, rewrites)
                proto = graph.check(proto)
        ops_optimized = graph.op_counts(proto)

        meta = {
            **(metadata or {}),
            "graph_rewrites": optimize_report.applied,
            "input_names": input_names, "output_names": output_names,
            "input_shapes": [list(x.shape) for x in example_inputs],
            "dynamic_axes": {n: {str(k): v for k, v in a.items()} for n, a in zip(input_names, axes)},
            "opset": opset, "precision": precision, "classifier": classifier, "versions": package_versions(),
        }
        precision_report: dict[str, Any] = {}
        if precision == "fp16":
            from ..precision import convert_to_fp16

            with reporter.stage("fp16", "attention regions kept FP32"):
                proto, fp16_report = convert_to_fp16(proto, keep_io_types=keep_io_types)
            precision_report = fp16_report.to_dict()
        elif precision == "int8":
            from ..precision import quantize_int8

            with reporter.stage("int8", f"Q/DQ, symmetric, per-channel; calibration: {calibration_label}"):
                proto, int8_report = quantize_int8(proto, calibration, calibration_label=calibration_label)
            precision_report = int8_report.to_dict()
        if precision_report:
            meta["precision_details"] = precision_report
        set_metadata(proto, meta)
        data = proto.SerializeToString()

        reference = TorchRunner(model, [TensorSpec(n, np.dtype(np.float32), tuple(
            None if i in a else d for i, d in enumerate(x.shape))) for n, x, a in zip(input_names, example_inputs, axes)],
            output_names)
        cases = parity_shapes([tuple(x.shape) for x in example_inputs], axes)
        feed = sample_feed(parity_data) if parity_data is not None and len(example_inputs) == 1 else random_feed
        with reporter.stage("parity", f"eager vs ONNX Runtime CPU, {precision}, {len(cases)} cases"):
            parity = run_parity(reference, data, cases, precision=precision, classifier=classifier, make_feed=feed,
                                max_scaled_error=max_scaled_error)
        if max_scaled_error is not None:
            reporter.note(f"scaled-error tolerance set to {max_scaled_error:g} by the caller "
                          f"(table: {tolerance_for(precision).max_scaled_error:g})")
        if not parity.passed:
            raise CheckFailedError("parity against eager failed, nothing written: " + "; ".join(parity.failures())
                                   + " (if float32 itself cannot resolve this network, e.g. a random-init `parallel` "
                                   "ResNet-50, set the tolerance explicitly with --max-scaled-error)")
        extra = after_parity(data, reference) if after_parity else {}

        onnx_rel = Path(VERSION_DIR) / MODEL_FILE
        report = ExportReport(
            name=name, model_dir=target, onnx_path=target / onnx_rel, report_path=target / REPORT_FILE,
            size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest(), ops_before_simplify=ops_before,
            ops_after_simplify=ops_after, fold=fold_report, fold_scaled_error=fold_error, parity=parity,
            metadata=meta, timings=dict(getattr(reporter, "timings", {})), notes=list(getattr(reporter, "notes", [])),
            extra=extra, ops_after_optimize=ops_optimized, optimize=optimize_report,
        )
        (staging / VERSION_DIR).mkdir()
        (staging / onnx_rel).write_bytes(data)
        from ..serving.triton_config import build_config, write_config

        write_config(staging, build_config(name, graph.io_signature(proto), kind="onnx",
                                           max_batch_size=triton_max_batch, metadata=meta))
        report.extra["triton_config"] = str(target / "config.pbtxt")
        report.timings["total"] = sum(v for k, v in report.timings.items() if k != "total")
        atomic_write_text(staging / REPORT_FILE, json.dumps(report.to_dict(), indent=2) + "\n")
    return report
