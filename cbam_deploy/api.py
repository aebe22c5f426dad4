"""The Python API: what the command-line tools do, callable from a training script.

    import cbam_deploy
    report = cbam_deploy.export(model, (torch.randn(1, 3, 224, 224),), out="models", name="mynet")
    cells = cbam_deploy.validate(report.model_dir, eager=model)
    timings = cbam_deploy.benchmark(report.model_dir, eager=model, batch_sizes=(1, 8))

Every function raises ``CbamDeployError`` subclasses with one-line messages: ``UsageError`` for bad
input, ``CheckFailedError`` when a check ran and failed (nothing is written then).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from .bench import Timing, time_interleaved
from .compare.matrix import BACKENDS, Cell, precision_models
from .compare.matrix import validate as _validate_matrix
from .errors import UsageError
from .onnx_export import DEFAULT_OPSET, ExportReport, export_model
from .model_dir import ExportedModel
from .progress import RichReporter, SilentReporter, StageReporter


def _as_inputs(example_inputs: torch.Tensor | Sequence[torch.Tensor] | Sequence[Sequence[int]]) -> tuple[torch.Tensor, ...]:
    """A tensor, tensors, or shapes (seeded standard-normal tensors are made for shapes)."""
    if isinstance(example_inputs, torch.Tensor):
        return (example_inputs,)
    items = list(example_inputs)
    if items and all(isinstance(d, int) for d in items):  # one shape given flat: (1, 3, 224, 224)
        items = [tuple(items)]
    out = []
    generator = torch.Generator().manual_seed(0)
    for item in items:
        if isinstance(item, torch.Tensor):
            out.append(item)
        elif isinstance(item, (tuple, list)) and item and all(isinstance(d, int) and d > 0 for d in item):
            out.append(torch.randn(*item, generator=generator))
        else:
            raise UsageError(f"example input {item!r} is neither a tensor nor a shape of positive integers")
    if not out:
        raise UsageError("no example inputs given")
    if any(not x.is_floating_point() for x in out):
        raise UsageError("example inputs must be floating point tensors (integer inputs are not supported)")
    return tuple(x.detach().float().cpu() for x in out)


def export(model: nn.Module, example_inputs: torch.Tensor | Sequence[torch.Tensor] | Sequence[Sequence[int]], *,
           out: str | Path = "models", name: str | None = None, precision: str = "fp32", dynamic: str = "batch",
           input_names: Sequence[str] | None = None, output_names: Sequence[str] | None = None,
           calibration: np.ndarray | str | None = None, calibration_label: str = "", keep_io_types: bool = True, opset: int = DEFAULT_OPSET,
           simplify: bool = True, force: bool = False, classifier: bool = False,
           max_scaled_error: float | None = None, metadata: Mapping[str, Any] | None = None,
           optimize: bool | Sequence[str] = True, progress: bool = False,
           reporter: StageReporter | None = None) -> ExportReport:
    """Fold, export, simplify, check and prove parity for any eval-mode model; write ``out/name/``.

    ``example_inputs``: tensors (or shapes) in the order ``forward`` takes them. ``calibration``
    (INT8): a preprocessed N x C x H x W float32 array, or a source string as ``--calibration``
    takes it (image folder, .npy, 'synthetic'). ``classifier`` adds top-1 agreement to parity.
    ``optimize``: CBAM-aware graph rewrites (True: the default set; False; or rewrite names).
    ``progress`` prints each stage as it runs. Returns the report (``report.passed``,
    ``report.onnx_path``, ``report.parity``, ...).
    """
    if not isinstance(model, nn.Module):
        raise UsageError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    inputs = _as_inputs(example_inputs)
    if isinstance(calibration, str):
        from .precision.calibration import load_calibration

        calibration, calibration_label, _ = load_calibration(calibration, input_shape=tuple(inputs[0].shape),
                                                             mean=None, std=None, reference_task=False)
    elif calibration is not None:
        calibration = np.ascontiguousarray(calibration, dtype=np.float32)
        calibration_label = calibration_label or f"array {list(calibration.shape)}"
    meta = {"host": type(model).__name__, "variant": "user", **(metadata or {})}
    return export_model(model, inputs, name=name or type(model).__name__.lower(), out=out, input_names=input_names,
                        output_names=output_names, dynamic=dynamic, opset=opset, simplify=simplify, force=force,
                        classifier=classifier, metadata=meta, reporter=reporter or (RichReporter() if progress else SilentReporter()),
                        precision=precision, keep_io_types=keep_io_types, calibration=calibration,
                        calibration_label=calibration_label, max_scaled_error=max_scaled_error, optimize=optimize,
                        parity_data=calibration if precision != "fp32" and len(inputs) == 1 else None)


def _open(model: str | Path | ExportedModel) -> ExportedModel:
    return model if isinstance(model, ExportedModel) else ExportedModel.open(model)


@dataclass
class ValidationReport:
    cells: list[Cell]

    @property
    def passed(self) -> bool:
        """Every cell that could run passed, and at least one ran."""
        return any(c.status == "pass" for c in self.cells) and not any(c.status == "fail" for c in self.cells)

    def failures(self) -> list[str]:
        return [f"{c.label}: {c.failures[0]}" for c in self.cells if c.status == "fail"]

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "cells": [c.to_dict() for c in self.cells]}


def validate(model: str | Path | ExportedModel, *, eager: nn.Module | None = None,
             precisions: Sequence[str] = ("fp32", "fp16"), backends: Sequence[str] = ("onnxruntime-cpu",),
             batch_sizes: Sequence[int] = (1, 4), resolutions: Sequence[tuple[int, int]] | None = None,
             calibration: np.ndarray | None = None) -> ValidationReport:
    """Eager against each backend x precision. ``eager`` defaults to the model rebuilt from the export's
    metadata; pass your module to compare against it directly. Unavailable backends are skipped cells."""
    exported = _open(model)
    cells = _validate_matrix(exported, precisions=precisions, backends=backends, batch_sizes=batch_sizes,
                             resolutions=resolutions, calibration=calibration,
                             calibration_label="array" if calibration is not None else "",
                             eager=exported.eager_runner(eager))
    return ValidationReport(cells)


def benchmark(model: str | Path | ExportedModel, *, eager: nn.Module | None | bool = True,
              precisions: Sequence[str] = ("fp32",), provider: str = "cpu", batch_sizes: Sequence[int] = (1, 8),
              threads: int = 2, warmup: int = 10, runs: int = 50, seconds: float | None = None,
              calibration: np.ndarray | None = None, bare: bool = False, optimization_level: str = "all",
              on_batch=None) -> list[Timing]:
    """Time ONNX Runtime (per precision) and, unless ``eager=False``, eager PyTorch side by side.

    ``eager``: True rebuilds the eager model from the export's metadata; a module is used as given.
    Configurations are interleaved round-robin in one process (see ``bench.time_interleaved``).
    """
    from .backends.onnxruntime import OnnxRuntimeRunner, create_session

    exported = _open(model)
    if any(b <= 0 for b in batch_sizes) or runs <= 0 or warmup < 0 or threads <= 0:
        raise UsageError("batch sizes, runs and threads must be positive, warmup not negative")
    batch_dynamic = any(0 in d for d in exported.input_dynamic_axes())
    if not batch_dynamic:
        batch_sizes = [exported.traced_shape[0]]
    models = precision_models(exported, precisions, calibration, "array" if calibration is not None else "")
    for p, m in models.items():
        if isinstance(m, str):
            raise UsageError(f"cannot benchmark {p}: {m}")
    torch.set_num_threads(threads)
    runners: dict[str, Any] = {}
    if eager is not False:
        runners["eager fp32"] = exported.eager_runner(None if eager is True else eager)
    for p in precisions:
        runners[f"onnxruntime {p}"] = OnnxRuntimeRunner(models[p], provider=provider, threads=threads,
                                                        spinning=False, optimization_level=optimization_level)
    for r in runners.values():
        r.__enter__()
    session = create_session(models[precisions[0]], provider=provider, threads=threads, spinning=False) if bare else None
    timings: list[Timing] = []
    try:
        for batch in batch_sizes:
            rng = np.random.default_rng(0)
            feed32 = {s.name: rng.standard_normal((batch if 0 in d else shape[0], *shape[1:])).astype(np.float32)
                      for s, shape, d in zip(exported.input_specs(), exported.traced_shapes, exported.input_dynamic_axes())}
            calls = {}
            for label, runner in runners.items():
                feed = {s.name: feed32[s.name].astype(s.dtype) for s in runner.input_specs()}
                calls[label] = (lambda r=runner, f=feed: r.infer(f))
            if session is not None:
                calls[f"bare session.run {precisions[0]}"] = lambda: session.run(None, feed32)
            if on_batch:
                on_batch(batch, len(calls))
            timings.extend(time_interleaved(calls, batch=batch, warmup=warmup, runs=runs, seconds=seconds).values())
    finally:
        for r in runners.values():
            r.__exit__(None, None, None)
    return timings


__all__ = ["BACKENDS", "ValidationReport", "benchmark", "export", "validate"]
