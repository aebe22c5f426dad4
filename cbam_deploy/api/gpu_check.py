"""``gpu_check``: the one command that proves the GPU path, inside the GPU image.

For the reference models (``resnet_mini`` with its trained weights) and a ResNet-50 of every
registered variant: export FP32, derive FP16 and INT8, build a TensorRT engine of each (Polygraphy's
loaders, through ``api.build``), check parity against eager and held-out accuracy (``api.validate``
with the ``onnxruntime-cuda`` and ``tensorrt`` backends), time TensorRT against ONNX Runtime CUDA and
eager (CPU torch: the image's torch is the CPU build) at batch 1 and 8, and write a Markdown report
that ends in a one-line verdict. Any failure fails the check.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import MissingDependencyError, UsageError
from ..options import ONNX_PRECISIONS
from ..progress import SilentReporter, StageReporter

HOSTS = ("resnet_mini", "resnet50")
GPU_BACKENDS = ("onnxruntime-cuda", "tensorrt")
IMAGE_HINT = ("run it inside the GPU image on a machine with an NVIDIA GPU: docker run --rm --gpus all "
              "cbam-deploy:gpu cbam-gpu-check")


@dataclass
class GpuStack:
    """What the GPU path runs on here (CUDA runtime, TensorRT, Polygraphy, ONNX Runtime)."""

    gpu: str
    compute_capability: str
    driver: str
    cuda_runtime: str
    tensorrt: str
    polygraphy: str
    onnxruntime: str

    def describe(self) -> str:
        return (f"{self.gpu} (compute {self.compute_capability}), driver CUDA {self.driver}, runtime CUDA "
                f"{self.cuda_runtime}, TensorRT {self.tensorrt}, Polygraphy {self.polygraphy}, "
                f"ONNX Runtime {self.onnxruntime}")


@dataclass
class ModelResult:
    name: str
    cells: list[Any] = field(default_factory=list)  # api.validate.Cell
    timings: list[dict[str, Any]] = field(default_factory=list)  # bench.Timing.to_dict() + backend/precision
    failures: list[str] = field(default_factory=list)


@dataclass
class GpuCheckReport:
    stack: GpuStack
    backends: tuple[str, ...]
    results: list[ModelResult] = field(default_factory=list)

    def failures(self) -> list[str]:
        return [f"{r.name}: {f}" for r in self.results for f in r.failures]

    @property
    def passed(self) -> bool:
        return bool(self.results) and not self.failures()

    def verdict(self) -> str:
        cells = sum(1 for r in self.results for c in r.cells if c.status != "skipped")
        if not self.passed:
            first = self.failures()[0] if self.failures() else "no model was checked"
            return f"FAIL: {len(self.failures())} failure(s); first: {first}"
        partial = "" if "tensorrt" in self.backends else " (TensorRT NOT checked: --without-tensorrt)"
        return (f"PASS: {len(self.results)} models, {cells} backend x precision cells, parity and accuracy within "
                f"tolerance on {self.stack.gpu}{partial}")


def gpu_stack(*, require_tensorrt: bool = True) -> GpuStack:
    """The GPU path's pieces, or ONE ``MissingDependencyError`` line listing every missing one."""
    from ..backends import backend_problem
    from ..backends.cuda_runtime import probe

    cuda = probe()
    missing = [] if cuda.gpus else [cuda.problem]
    ort_problem = backend_problem("onnxruntime-cuda") if cuda.gpus else None
    if ort_problem:
        missing.append(f"ONNX Runtime CUDA: {ort_problem}")
    versions = {"tensorrt": "not needed", "polygraphy": "not needed"}
    if require_tensorrt:
        for package in ("tensorrt", "polygraphy"):
            try:
                versions[package] = __import__(package).__version__
            except ImportError:
                missing.append(f"the '{package}' Python package is not installed")
    if missing:
        raise MissingDependencyError(f"the GPU check cannot run here: {'; '.join(missing)}; {IMAGE_HINT}")
    import onnxruntime

    gpu = cuda.gpus[0]
    return GpuStack(gpu.name, gpu.compute_capability, cuda.driver_version, cuda.runtime_version,
                    versions["tensorrt"], versions["polygraphy"], onnxruntime.__version__)


def export_builtin(host: str, variant: str, out: Path):
    """Export ``host`` + ``variant`` (reference weights for resnet_mini, seeded random otherwise) to
    ``out/NAME`` and return the opened export and the eager module."""
    import torch

    from ..model_dir import ExportedModel
    from ..models.hosts import host_defaults
    from ..models.spec import ModelSpec, build_model
    from .export import export

    weights = "reference" if host == "resnet_mini" else "random"
    built = build_model(ModelSpec(arch=host, variant=variant, weights=weights))
    defaults = host_defaults(host)
    metadata = {"variant": variant, "host": host, "model_spec": built.spec.to_dict(),
                "num_classes": built.spec.num_classes, "classes": built.config.get("classes"),
                "checkpoint_sha256": built.checkpoint_sha256 or f"none ({weights} weights, seed 0)",
                "preprocessing": {"mean": list(built.config.get("mean") or defaults.mean or []) or None,
                                  "std": list(built.config.get("std") or defaults.std or []) or None,
                                  "input_size": list(defaults.input_shape[2:]), "layout": "NCHW"}}
    torch.manual_seed(0)
    report = export(built.model, [defaults.input_shape], out=out, name=f"{variant}_{host}", dynamic="batch",
                    classifier=True, metadata=metadata, force=True)
    return ExportedModel.open(report.onnx_path.parent.parent), built.model


def time_backends(exported, module, precisions: Sequence[str], backends: Sequence[str], calibration,
                  engines: Path, *, batch_sizes: Sequence[int], warmup: int, runs: int) -> list[dict[str, Any]]:
    """Medians of eager (CPU) and each backend per precision, interleaved per batch size; TensorRT
    engines are built (with a shared timing cache) into ``engines``."""
    import numpy as np

    from ..backends import get_backend, open_runner
    from ..bench import time_interleaved
    from .build import plan_profile, write_plan
    from .validate import precision_models

    models = precision_models(exported, precisions, calibration, "gpu-check")
    profile = plan_profile(exported, max_batch=max(batch_sizes))
    rows: list[dict[str, Any]] = []
    with ExitStack() as stack:
        runners = {("eager-cpu", "fp32"): stack.enter_context(exported.eager_runner(module))}
        for precision, data in models.items():
            if isinstance(data, str):
                continue
            for backend in backends:
                source: Any = data
                if get_backend(backend).runs == "plan":
                    onnx_file = engines / f"{exported.name}_{precision}.onnx"
                    onnx_file.write_bytes(data)
                    source = write_plan(onnx_file, profile, onnx_file.with_suffix(".plan"), precision=precision,
                                        metadata=exported.metadata, timing_cache=engines / "timing.cache").plan
                runners[backend, precision] = stack.enter_context(open_runner(backend, source))
        for batch in batch_sizes:
            rng = np.random.default_rng(0)
            feed = {s.name: rng.standard_normal((batch, *shape[1:])).astype(np.float32)
                    for s, shape in zip(exported.input_specs(), exported.traced_shapes)}
            calls = {key: (lambda r=runner: r.infer({s.name: feed[s.name].astype(s.dtype) for s in r.input_specs()}))
                     for key, runner in runners.items()}
            timed = time_interleaved({f"{b} {p}": c for (b, p), c in calls.items()}, batch=batch, warmup=warmup,
                                     runs=runs)
            for (backend, precision), label in zip(calls, timed):
                rows.append({**timed[label].to_dict(), "backend": backend, "precision": precision})
    return rows


def gpu_check(out: str | Path, *, hosts: Sequence[str] = HOSTS, variants: Sequence[str] | None = None,
              precisions: Sequence[str] = ONNX_PRECISIONS, batch_sizes: Sequence[int] = (1, 8), warmup: int = 10,
              runs: int = 50, require_tensorrt: bool = True, reporter: StageReporter | None = None,
              export_fn: Callable[..., Any] = export_builtin, validate_fn: Callable[..., Any] | None = None,
              time_fn: Callable[..., Any] = time_backends, stack: GpuStack | None = None) -> GpuCheckReport:
    """Run the whole GPU check into folder ``out`` (exports, engines); return the report (not yet written).

    ``require_tensorrt=False`` checks everything up to TensorRT (ONNX Runtime CUDA, CUDA runtime,
    parity, accuracy, timing) on a GPU machine without TensorRT; the verdict says TensorRT was not
    checked. ``export_fn``/``validate_fn``/``time_fn``/``stack`` replace the stages (tests).
    """
    reporter = reporter or SilentReporter()
    if any(b <= 0 for b in batch_sizes) or not batch_sizes or runs <= 0 or warmup < 0:
        raise UsageError(f"batch sizes and runs must be positive and warmup >= 0; got {list(batch_sizes)}, "
                         f"runs {runs}, warmup {warmup}")
    stack = stack or gpu_stack(require_tensorrt=require_tensorrt)
    from ..models import list_variants  # torch: only once the machine is known to be able to run the check

    backends = GPU_BACKENDS if require_tensorrt else ("onnxruntime-cuda",)
    if validate_fn is None:
        from .validate import validate as validate_fn
    report = GpuCheckReport(stack, backends)
    root = Path(out)
    (root / "engines").mkdir(parents=True, exist_ok=True)
    for host in hosts:
        for variant in variants or list_variants():
            result = ModelResult(f"{variant}_{host}")
            report.results.append(result)
            try:
                _check_model(result, host, variant, root, report.backends, precisions, batch_sizes, warmup, runs,
                             reporter, export_fn, validate_fn, time_fn)
            except (MissingDependencyError, UsageError) as exc:
                result.failures.append(str(exc))
    return report


def _check_model(result: ModelResult, host: str, variant: str, root: Path, backends: Sequence[str],
                 precisions: Sequence[str], batch_sizes: Sequence[int], warmup: int, runs: int,
                 reporter: StageReporter, export_fn, validate_fn, time_fn) -> None:
    from .calibration import calibration_for

    with reporter.stage("export", result.name):
        exported, module = export_fn(host, variant, root / "models")
    calibration, label, _ = calibration_for(exported, None if exported.is_reference_task else "synthetic")
    with reporter.stage("validate", f"{result.name}: {', '.join(backends)} x {', '.join(precisions)}"):
        validation = validate_fn(exported, eager=module, precisions=precisions, backends=backends,
                                 batch_sizes=batch_sizes, calibration=calibration, calibration_label=label)
    result.cells = list(validation.cells)
    result.failures += [f"{c.label}: {'; '.join(c.failures)}" for c in result.cells if c.status == "fail"]
    result.failures += [f"{c.label} did not run: {c.reason}" for c in result.cells if c.status == "skipped"]
    with reporter.stage("time", f"{result.name}: batch {', '.join(map(str, batch_sizes))}"):
        result.timings = time_fn(exported, module, precisions, backends, calibration, root / "engines",
                                 batch_sizes=batch_sizes, warmup=warmup, runs=runs)


def _cell_row(model: str, cell: Any) -> str:
    if cell.status == "skipped":
        return f"| {model} | {cell.backend} | {cell.precision} | skipped: {cell.reason} | | |"
    worst = cell.parity.worst().scaled_error if cell.parity is not None else float("nan")
    acc = cell.accuracy
    accuracy = f"{100 * acc['top1']:.1f}% ({100 * acc['reference_top1']:.1f}%)" if acc else "-"
    status = cell.status + (f": {'; '.join(cell.failures)}" if cell.failures else "")
    return f"| {model} | {cell.backend} | {cell.precision} | {status} | {worst:.2e} | {accuracy} |"


def _timing_table(results: Sequence[ModelResult]) -> list[str]:
    rows = ["| model | batch | backend | precision | median ms | images/s | vs eager |", "|---|---|---|---|---|---|---|"]
    for r in results:
        eager = {t["batch"]: t["p50_ms"] for t in r.timings if t["backend"] == "eager-cpu"}
        for t in sorted(r.timings, key=lambda t: (t["batch"], t["backend"], t["precision"])):
            ratio = eager.get(t["batch"], 0) / t["p50_ms"] if t["p50_ms"] else 0
            rows.append(f"| {r.name} | {t['batch']} | {t['backend']} | {t['precision']} | {t['p50_ms']:.3f} "
                        f"| {t['throughput_per_s']:.0f} | {ratio:.1f}x |")
    return rows


def markdown(report: GpuCheckReport) -> str:
    """The report as Markdown: the stack, every parity/accuracy cell, the timings, the verdict last."""
    lines = ["# cbam-gpu-check", "", f"Stack: {report.stack.describe()}.", "",
             "Eager is PyTorch on the CPU (the image installs torch's CPU build; nothing on the GPU path uses "
             "torch CUDA). Parity: worst output error scaled by the eager output's largest magnitude.", "",
             "## Parity and held-out accuracy", "",
             "| model | backend | precision | result | worst scaled error | held-out top-1 (eager) |",
             "|---|---|---|---|---|---|"]
    lines += [_cell_row(r.name, c) for r in report.results for c in r.cells]
    lines += ["", "## Latency (medians, interleaved)", ""] + _timing_table(report.results)
    if report.failures():
        lines += ["", "## Failures", ""] + [f"- {f}" for f in report.failures()]
    lines += ["", f"**Verdict: {report.verdict()}**", ""]
    return "\n".join(lines)


def write_report(report: GpuCheckReport, path: str | Path, *, force: bool = False) -> Path:
    """Write the Markdown report atomically; an existing file is kept unless ``force``."""
    from ..artifacts import atomic_write_text

    target = Path(path)
    if target.exists() and not force:
        raise UsageError(f"{str(target)!r} already exists; pass --force to overwrite it")
    atomic_write_text(target, markdown(report))
    return target
