"""``torch.onnx.export`` with the current (dynamo) exporter and named dynamic axes."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from typing import Iterator, Sequence

import onnx
import torch
from torch import nn

from ..errors import CheckFailedError, UsageError

DYNAMIC_MODES = ("batch", "hw", "all", "none")
DEFAULT_OPSET = 18
MIN_OPSET = 18  # the dynamo exporter's minimum
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
def _quiet_exporter() -> Iterator[io.StringIO]:
    """The exporter logs warnings (e.g. torchvision not installed) that say nothing to our users."""
    captured = io.StringIO()
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings(), contextlib.redirect_stdout(captured):
        warnings.simplefilter("ignore")
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            yield captured
        finally:
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)


def export_to_onnx(
    model: nn.Module,
    example_inputs: Sequence[torch.Tensor],
    *,
    input_names: Sequence[str],
    output_names: Sequence[str],
    dynamic_axes: Sequence[dict[int, str]],
    opset: int = DEFAULT_OPSET,
) -> onnx.ModelProto:
    """Export an eval-mode model; ``dynamic_axes[i]`` names the dynamic axes of input ``i``.

    Dynamic axes are traced with ``torch.export.Dim`` ranges; axes with the same name share one Dim.
    """
    if opset < MIN_OPSET:
        raise UsageError(f"--opset {opset} is not supported by the current exporter; use {MIN_OPSET} or newer")
    dims: dict[str, torch.export.Dim] = {}
    dynamic_shapes = []
    for axes in dynamic_axes:
        spec = {}
        for axis, name in axes.items():
            if name not in dims:
                dims[name] = torch.export.Dim(name, min=1 if axis == 0 else 8, max=MAX_DIM)
            spec[axis] = dims[name]
        dynamic_shapes.append(spec or None)
    try:
        with _quiet_exporter(), torch.no_grad():
            program = torch.onnx.export(
                model, tuple(example_inputs), dynamo=True, opset_version=opset,
                input_names=list(input_names), output_names=list(output_names),
                dynamic_shapes=tuple(dynamic_shapes), optimize=True, verbose=False,
            )
    except Exception as exc:  # the exporter raises many types; the message is what users need
        first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise CheckFailedError(f"torch.onnx.export failed: {first}") from exc
    return program.model_proto
