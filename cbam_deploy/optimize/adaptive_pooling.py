"""Adaptive pooling to sizes other than 1, as exact mean/amax arithmetic the exporters keep dynamic.

Why: Coordinate Attention pools with ``nn.AdaptiveAvgPool2d((None, 1))`` and ``((1, None))``. The
TorchScript exporter refuses any output size that is not constant ("Unsupported: ONNX export of
operator adaptive pooling, since output_size is not constant", even with only the batch dynamic),
torch.export fails on a symbolic size, and a fixed size above 1 is written as an AvgPool whose kernel
is the traced size divided by the output (wrong at every other resolution). The fix users apply by
hand is a mean over one axis; this does it for them, exactly:

- ``None`` keeps an axis, ``1`` reduces it (``ReduceMean``/``ReduceMax`` with keepdims);
- ``k`` that divides the axis at the traced shape: the axis is reshaped to ``(k, size // k)`` and the
  second part reduced, which is what adaptive pooling computes whenever ``k`` divides the size
  (at a size it does not divide the ONNX's Reshape refuses the input rather than answer wrongly).

Output size 1 on both axes is left alone: it already exports as GlobalAveragePool/GlobalMaxPool,
which FP16 and the ONNX rewrites recognise.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import fx, nn

_MODULES = {nn.AdaptiveAvgPool2d: "avg", nn.AdaptiveMaxPool2d: "max"}
_CALLS = {F.adaptive_avg_pool2d: "avg", F.adaptive_max_pool2d: "max"}


def _pair(size) -> tuple[int | None, int | None] | None:
    """(out_h, out_w) of an adaptive pooling's output_size, or None when it is not a plain constant."""
    if isinstance(size, int) or size is None:
        return size, size
    if isinstance(size, (tuple, list)) and len(size) == 2 and all(s is None or isinstance(s, int) for s in size):
        return size[0], size[1]
    return None


def _needs_rewrite(out: tuple[int | None, int | None]) -> bool:
    return out != (1, 1)


def _blocks(out: tuple[int | None, int | None]) -> bool:
    return any(s is not None and s > 1 for s in out)


class ExactAdaptivePool2d(nn.Module):
    """``adaptive_{avg,max}_pool2d(x, out)`` as a mean/amax over axes or equal blocks (see the module doc)."""

    def __init__(self, kind: str, out: tuple[int | None, int | None], source: str = ""):
        super().__init__()
        self.kind, self.out, self.source = kind, out, source

    def extra_repr(self) -> str:
        return f"{self.kind}, output_size={self.out}" + (f", replaces {self.source}" if self.source else "")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return exact_adaptive_pool2d(x, self.kind, self.out)


def exact_adaptive_pool2d(x: torch.Tensor, kind: str, out: tuple[int | None, int | None]) -> torch.Tensor:
    reduce = torch.mean if kind == "avg" else torch.amax
    oh, ow = out
    if not _blocks(out):
        dims = [axis for axis, size in ((-2, oh), (-1, ow)) if size == 1]
        return reduce(x, dims, keepdim=True) if dims else x
    h, w = x.shape[-2], x.shape[-1]
    # None keeps the axis: blocks of one element. Sizes stay symbolic, so H and W stay dynamic.
    bh, bw = (1 if oh is None else h // oh), (1 if ow is None else w // ow)
    nh, nw = (h if oh is None else oh), (w if ow is None else ow)
    blocks = x.reshape(*x.shape[:-2], nh, bh, nw, bw)
    return reduce(blocks, [-3, -1], keepdim=False)


def swap_adaptive_modules(model: nn.Module, example_inputs: Sequence[torch.Tensor] | None) -> tuple[list[str], list[str]]:
    """Replace adaptive pooling modules in place; returns (replaced module names, lines for those left)."""
    found = []
    for name, module in model.named_modules(remove_duplicate=False):
        kind = _MODULES.get(type(module))  # exact type: a subclass may compute something else
        out = _pair(getattr(module, "output_size", None)) if kind else None
        if not name or out is None or not _needs_rewrite(out) or getattr(module, "return_indices", False):
            continue
        found.append((name, module, kind, out))
    shapes = _input_shapes(model, [(n, m) for n, m, _, out in found if _blocks(out)], example_inputs)
    swapped, left = [], []
    for name, module, kind, out in found:
        if _blocks(out):
            why = _why_not(out, shapes.get(name)) if example_inputs is not None else \
                "no example input to check that its output size divides the map"
            if why:
                left.append(f"{name} ({module}: {why})")
                continue
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, ExactAdaptivePool2d(kind, out, type(module).__name__))
        swapped.append(name)
    return swapped, left


def _why_not(out: tuple[int | None, int | None], shapes: list[tuple[int, ...]] | None) -> str:
    if not shapes:
        return "not called on the example input, so whether its output size divides the map is unknown"
    for shape in shapes:
        for size, k, axis in ((shape[-2], out[0], "height"), (shape[-1], out[1], "width")):
            if k is not None and k > 1 and size % k:
                return (f"output {k} does not divide the traced {axis} {size}; adaptive pooling then uses "
                        "windows of unequal sizes, which have no exact dynamic form")
    return ""


def _input_shapes(model: nn.Module, modules: list[tuple[str, nn.Module]],
                  example_inputs: Sequence[torch.Tensor] | None) -> dict[str, list[tuple[int, ...]]]:
    """Input shapes each module sees on the example inputs (one eager forward, only when needed)."""
    if not modules or example_inputs is None:
        return {}
    shapes: dict[str, list[tuple[int, ...]]] = {}
    handles = [m.register_forward_pre_hook(lambda _m, args, n=n: shapes.setdefault(n, []).append(tuple(args[0].shape)))
               for n, m in modules]
    try:
        with torch.no_grad():
            model(*example_inputs)
    finally:
        for handle in handles:
            handle.remove()
    return shapes


def rewrite_adaptive_calls(traced: fx.GraphModule) -> list[str]:
    """``F.adaptive_*_pool2d(x, size)`` calls with a constant size of 1s and Nones (exact at any
    shape), in an fx graph; returns the rewritten node names."""
    rewritten = []
    for node in list(traced.graph.nodes):
        kind = _CALLS.get(node.target) if node.op == "call_function" else None
        size = node.args[1] if len(node.args) > 1 else node.kwargs.get("output_size")
        out = _pair(size) if kind else None
        if out is None or not _needs_rewrite(out) or _blocks(out) or node.kwargs.get("return_indices"):
            continue
        with traced.graph.inserting_after(node):
            new = traced.graph.call_function(exact_adaptive_pool2d, (node.args[0], kind, out))
        node.replace_all_uses_with(new)
        traced.graph.erase_node(node)
        rewritten.append(node.name)
    return rewritten
