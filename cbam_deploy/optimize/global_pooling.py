"""Pooling that pins the feature map's size, rewritten before export to arithmetic that does not.

- Whole-map pooling written with a kernel taken from the input's size
  (``F.avg_pool2d(x, (x.size(2), x.size(3)))``, as the CBAM paper authors' code does) becomes
  ``adaptive_*_pool2d(x, 1)``.
- ``nn.AdaptiveAvgPool2d`` / ``nn.AdaptiveMaxPool2d`` (and ``F.adaptive_*_pool2d`` where torch.fx
  can trace the model) become a mean/amax: over one axis for ``(None, 1)`` / ``(1, None)``
  (Coordinate Attention), over both for ``1``, and over equal blocks (a reshape) for an output
  size that divides the input at the traced shape (``adaptive_pooling.py``).

Why: the exporter bakes such a kernel into the graph as a constant (torch.export specialises H and
W to the traced size), so the ONNX rejects every other resolution. The adaptive form exports as
GlobalAveragePool / GlobalMaxPool (or ReduceMean/ReduceMax), which stays dynamic. Same arithmetic:
a kernel and stride equal to the map's size with no padding pools the whole map once.
"""

from __future__ import annotations

import operator
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import fx, nn

from .adaptive_pooling import rewrite_adaptive_calls, swap_adaptive_modules

_POOLS = {F.avg_pool2d: F.adaptive_avg_pool2d, F.max_pool2d: F.adaptive_max_pool2d}
_H, _W = (2, -2), (3, -1)


def _size_of(node: object, source: fx.Node, axes: tuple[int, int]) -> bool:
    """``source.size(axis)`` or ``source.shape[axis]`` for an axis in ``axes``."""
    if not isinstance(node, fx.Node):
        return False
    if node.op == "call_method" and node.target == "size" and len(node.args) == 2:
        return node.args[0] is source and node.args[1] in axes
    if node.op == "call_function" and node.target is operator.getitem and node.args[1] in axes:
        shape = node.args[0]
        return (isinstance(shape, fx.Node) and shape.op == "call_function" and shape.target is getattr
                and shape.args[0] is source and shape.args[1] == "shape")
    return False


def _whole_map(pair: object, source: fx.Node) -> bool:
    return (isinstance(pair, (tuple, list)) and len(pair) == 2
            and _size_of(pair[0], source, _H) and _size_of(pair[1], source, _W))


def _is_global(node: fx.Node) -> bool:
    args = list(node.args) + [None] * 7
    source, kernel = args[0], args[1]
    if not isinstance(source, fx.Node) or not _whole_map(kernel, source):
        return False
    stride = node.kwargs.get("stride", args[2])
    padding = node.kwargs.get("padding", args[3] if args[3] is not None else 0)
    if stride is not None and stride != () and not _whole_map(stride, source):
        return False
    if padding not in (0, (0, 0), [0, 0]):
        return False
    if node.target is F.max_pool2d:
        dilation = node.kwargs.get("dilation", args[4] if args[4] is not None else 1)
        return dilation in (1, (1, 1)) and not node.kwargs.get("return_indices", False)
    # ceil_mode and count_include_pad are moot when kernel == size and padding is 0; a divisor is not.
    return node.kwargs.get("divisor_override", args[6]) is None


def globalize_pooling(model: nn.Module, example_inputs: Sequence[torch.Tensor] | None = None, *,
                      left: list[str] | None = None) -> tuple[nn.Module, list[str]]:
    """Rewrite pooling that pins the map's size; returns (model, rewritten node/module names).

    ``example_inputs`` (the traced inputs) let adaptive pooling to sizes above 1 be rewritten where
    they divide the input; ``left`` receives one line per adaptive pooling left as written, with why.
    The model is returned as given when nothing matches; the fx rewrites need torch.fx to trace it
    (modules are swapped either way, in place: pass a copy).
    """
    model, rewritten = _fx_rewrites(model)
    swapped, kept = swap_adaptive_modules(model, example_inputs)
    if left is not None:
        left.extend(kept)
    return model, rewritten + swapped


def _fx_rewrites(model: nn.Module) -> tuple[nn.Module, list[str]]:
    try:
        traced = fx.symbolic_trace(model)
    except Exception:  # data-dependent control flow: leave the model as the user wrote it
        return model, []
    rewritten = []
    for node in list(traced.graph.nodes):
        if node.op == "call_function" and node.target in _POOLS and _is_global(node):
            with traced.graph.inserting_after(node):
                new = traced.graph.call_function(_POOLS[node.target], (node.args[0], 1))
            node.replace_all_uses_with(new)
            traced.graph.erase_node(node)
            rewritten.append(node.name)
    rewritten += rewrite_adaptive_calls(traced)
    if not rewritten:
        return model, []
    traced.graph.eliminate_dead_code()
    traced.recompile()
    traced.eval()
    return traced, rewritten
