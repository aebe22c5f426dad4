"""Outputs of any structure as named ONNX outputs.

ONNX graphs have a flat list of named outputs; models return a tensor, a tuple, a dict (a
detector's ``{"boxes": ..., "scores": ...}``) or nests of them. The leaves are taken in a fixed
order (dicts in insertion order, sequences by index) and named after their path: dict keys as they
are (``boxes``), sequence positions as numbers (``output_1`` at the top, ``output_1.0`` deeper,
``head.scores.0`` under a dict). A single tensor is ``output`` (``logits`` for a classifier).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from ..errors import UsageError

Path = tuple[Any, ...]


def flatten_outputs(value: Any, path: Path = ()) -> list[tuple[Path, torch.Tensor]]:
    """Leaves of an output structure with their paths; a non-tensor leaf is a ``UsageError``."""
    if isinstance(value, torch.Tensor):
        return [(path, value)]
    if isinstance(value, dict):
        return [leaf for key, item in value.items() for leaf in flatten_outputs(item, (*path, key))]
    if isinstance(value, (tuple, list)):
        return [leaf for i, item in enumerate(value) for leaf in flatten_outputs(item, (*path, i))]
    where = f"output {path_name(path, single=False)!r}" if path else "the output"
    raise UsageError(f"the model returns {type(value).__name__} at {where}; ONNX outputs must be tensors "
                     "(in dicts, tuples or lists of any depth); return the tensor or drop that entry")


def path_name(path: Path, *, single: bool, classifier: bool = False) -> str:
    """The ONNX name of the leaf at ``path``: dict keys as they are, positions as numbers."""
    if not path:
        return "logits" if classifier else "output"
    parts = [str(p) for p in path]
    if isinstance(path[0], int):  # a sequence at the top: output_0, output_1.boxes, ...
        parts[0] = f"output_{path[0]}"
    return ".".join(parts)


def output_names(paths: Sequence[Path], *, classifier: bool, given: Sequence[str] | None = None) -> list[str]:
    """Names for the flattened outputs: ``given`` (``--output-names``) renames them in order."""
    if given:
        names = list(given)
        if len(names) != len(paths):
            described = ", ".join(path_name(p, single=len(paths) == 1) for p in paths)
            raise UsageError(f"{len(names)} output names for a model with {len(paths)} outputs ({described})")
    else:
        names = [path_name(p, single=len(paths) == 1, classifier=classifier and len(paths) == 1) for p in paths]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UsageError(f"output names must be unique; repeated: {', '.join(duplicates)}")
    return names


class FlatOutputs(nn.Module):
    """``model`` with its outputs flattened into a tuple of tensors, in ``flatten_outputs`` order."""

    def __init__(self, model: nn.Module, paths: Sequence[Path]) -> None:
        super().__init__()
        self.model = model
        self.paths = [tuple(p) for p in paths]
        # A new Module is in training mode; the exporters put the wrapper in eval mode while they run
        # and then restore *its* mode recursively, which would leave ``model`` training (BatchNorm
        # statistics updated by the next forward). The wrapper takes the model's mode instead.
        self.train(model.training)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        leaves = flatten_outputs(self.model(*inputs))
        if [p for p, _ in leaves] != self.paths:  # e.g. a dict whose keys depend on the input
            raise UsageError(f"the model's output structure changed between calls: {[p for p, _ in leaves]} "
                             f"instead of {self.paths}")
        return tuple(t for _, t in leaves)


def exportable(model: nn.Module, paths: Sequence[Path]) -> nn.Module:
    """What the exporter traces: ``model`` itself when its outputs already are a tensor or a flat
    tuple/list of tensors (so the ONNX keeps the parameter names the user wrote, ``layer3.0.conv2.weight``),
    else ``model`` wrapped in ``FlatOutputs`` (whose parameters read ``model.layer3...``)."""
    flat = all(len(p) == 0 for p in paths) or all(len(p) == 1 and isinstance(p[0], int) for p in paths)
    return model if flat else FlatOutputs(model, paths)


def flatten_module(model: nn.Module, output: Any, *, classifier: bool = False,
                   names: Sequence[str] | None = None) -> tuple[FlatOutputs, list[str]]:
    """``model`` wrapped to return a flat tuple, and the outputs' names; ``output`` is one eager result."""
    leaves = flatten_outputs(output)
    if not leaves:
        raise UsageError("the model returns no tensors")
    paths = [p for p, _ in leaves]
    return FlatOutputs(model, paths), output_names(paths, classifier=classifier, given=names)


def output_axes(traced: Sequence[torch.Tensor], other: Sequence[torch.Tensor], names: Sequence[str],
                input_axes: dict[int, str]) -> list[dict[int, str]]:
    """Dynamic axes of each flat output: the axes whose size differs between two eager runs at
    different input shapes. An axis sized like a dynamic input axis takes that axis's name."""
    out = []
    for name, a, b in zip(names, traced, other):
        if a.dim() != b.dim():
            raise UsageError(f"output {name!r} changes rank with the input shape ({a.dim()} vs {b.dim()})")
        axes = {}
        for i, (da, db) in enumerate(zip(a.shape, b.shape)):
            if da != db:
                axes[i] = "batch" if i == 0 and 0 in input_axes else f"{name}_dim{i}"
        out.append(axes)
    return out
