"""``torch.onnx.export`` with either of PyTorch's exporters and named dynamic axes.

``torchscript`` (``dynamo=False``) traces the module with ``torch.jit.trace``; ``dynamo`` goes
through ``torch.export``. Both produce the same operators on CBAM networks after onnxsim; the
choice of default is measured in ``benchmarks/exporter_choice.py`` (see docs/guides/export.md).
"""

from __future__ import annotations

import contextlib
import inspect
import io
import logging
import re
import warnings
from pathlib import Path
from typing import Iterator, Sequence

import onnx
import torch
from torch import nn

from ..errors import CheckFailedError, UsageError
from ..options import DEFAULT_EXPORTER, DEFAULT_OPSET, DYNAMIC_MODES, EXPORTERS, MIN_OPSET

__all__ = ["DEFAULT_EXPORTER", "DEFAULT_OPSET", "DYNAMIC_MODES", "EXPORTERS", "MIN_OPSET", "dynamic_axes_for",
           "export_to_onnx"]
MAX_DIM = 4096


def dynamic_axes_for(mode: str, rank: int) -> dict[int, str]:
    """Axis index -> name for one NCHW-like input: ``batch`` (axis 0), ``hw`` (axes 2, 3), both, none."""
    if mode not in DYNAMIC_MODES:
        raise UsageError(f"unknown --dynamic mode {mode!r}; valid: {', '.join(DYNAMIC_MODES)}")
    axes: dict[int, str] = {}
    if mode in ("batch", "all"):
        axes[0] = "batch"
    if mode in ("hw", "all"):
        if rank < 4:
            raise UsageError(f"--dynamic {mode} needs an N x C x H x W input, got rank {rank}")
        axes[rank - 2], axes[rank - 1] = "height", "width"
    return axes


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[list[warnings.WarningMessage]]:
    """The exporters log and warn about things that say nothing to our users (torchvision not
    installed, the TorchScript exporter's deprecation); the warnings are recorded, not shown."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript", "torch.jit")]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("always")
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            yield caught
        finally:
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)


def tracer_warnings(caught: Sequence[warnings.WarningMessage]) -> list[str]:
    """The TorchScript tracer's warnings that the graph may not generalise (a Python value taken
    from a tensor is frozen into the trace), one line each, without repeats."""
    lines = []
    for w in caught:
        if issubclass(w.category, torch.jit.TracerWarning):
            first = str(w.message).splitlines()[0].split(". ")[0]  # the rest is the same boilerplate each time
            line = f"{Path(w.filename).name}, line {w.lineno}: {first}"
            if line not in lines:
                lines.append(line)
    return lines


def export_to_onnx(
    model: nn.Module,
    example_inputs: Sequence[torch.Tensor],
    *,
    input_names: Sequence[str],
    output_names: Sequence[str],
    dynamic_axes: Sequence[dict[int, str]],
    opset: int = DEFAULT_OPSET,
    exporter: str = DEFAULT_EXPORTER,
    output_axes: Sequence[dict[int, str]] | None = None,
    notes: list[str] | None = None,
) -> onnx.ModelProto:
    """Export an eval-mode model whose outputs are a flat tuple of tensors (or one tensor).

    ``dynamic_axes[i]`` names the dynamic axes of input ``i``; axes with the same name share one
    size. ``output_axes[i]`` names output ``i``'s dynamic axes (the TorchScript exporter needs them
    said; dynamo derives them). ``notes`` receives the TorchScript tracer's warnings that the
    graph may be frozen to the traced values (parity at other shapes is the proof either way).
    """
    if exporter not in EXPORTERS:
        raise UsageError(f"unknown exporter {exporter!r}; valid: {', '.join(EXPORTERS)}")
    if opset < MIN_OPSET:
        raise UsageError(f"--opset {opset} is not supported; use {MIN_OPSET} or newer")
    try:
        with _quiet_exporter() as caught, torch.no_grad():
            if exporter == "dynamo":
                return _dynamo(model, tuple(example_inputs), input_names, output_names, dynamic_axes, opset)
            proto = _torchscript(model, tuple(example_inputs), input_names, output_names, dynamic_axes,
                                 output_axes or [{} for _ in output_names], opset)
        if notes is not None:
            notes.extend(tracer_warnings(caught))
        return proto
    except Exception as exc:  # the exporters raise many types; the message is what users need
        raise CheckFailedError(f"torch.onnx.export ({exporter}) failed: {_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    """The line that says what went wrong: dynamo wraps the cause as "<class 'X'>: message" below a banner."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(exc).splitlines()]
    cause = next((line for line in lines if line.startswith("<class '")), None)
    return cause or next((line for line in lines if line), type(exc).__name__)


def _dynamo(model, inputs, input_names, output_names, dynamic_axes, opset) -> onnx.ModelProto:
    dims: dict[str, torch.export.Dim] = {}
    dynamic_shapes = []
    for axes in dynamic_axes:
        spec = {}
        for axis, name in axes.items():
            if name not in dims:
                dims[name] = torch.export.Dim(name, min=1 if axis == 0 else 8, max=MAX_DIM)
            spec[axis] = dims[name]
        dynamic_shapes.append(spec or None)
    params = list(inspect.signature(model.forward).parameters.values())
    shapes = tuple(dynamic_shapes)
    if len(params) == 1 and params[0].kind is inspect.Parameter.VAR_POSITIONAL:  # forward(*inputs)
        shapes = (shapes,)
    program = torch.onnx.export(model, inputs, dynamo=True, opset_version=opset, input_names=list(input_names),
                                output_names=list(output_names), dynamic_shapes=shapes,
                                optimize=True, verbose=False)
    return program.model_proto


def _torchscript(model, inputs, input_names, output_names, dynamic_axes, output_axes, opset) -> onnx.ModelProto:
    axes = {n: dict(a) for n, a in zip(input_names, dynamic_axes) if a}
    axes.update({n: dict(a) for n, a in zip(output_names, output_axes) if a})
    buffer = io.BytesIO()
    torch.onnx.export(model, inputs, buffer, dynamo=False, opset_version=opset, input_names=list(input_names),
                      output_names=list(output_names), dynamic_axes=axes, do_constant_folding=True,
                      verbose=False)
    return onnx.load_from_string(buffer.getvalue())
