"""Eager activations through forward hooks, mapped through BatchNorm folding.

The export folds every BatchNorm into the Conv/Linear feeding it, and the folded layer keeps the
conv's name: its ONNX output is the eager *BatchNorm's* output. A BatchNorm's input is the very tensor
its producer returned (no-op modules such as Identity and eval Dropout pass it on unchanged), so
the hooks pair them by tensor storage while the forward runs, without tracing the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Collection, Mapping

import numpy as np
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_FOLD_TARGETS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


@dataclass
class Activation:
    """One call of one module: its output (after the folded BatchNorm, if any)."""

    module: str
    call: int  # 0 for the first call of a module, 1 for the second (a shared MLP), ...
    order: int  # completion order in the forward pass
    value: np.ndarray | None  # None: not comparable (dropped before pairing)
    folded: str | None = None  # the BatchNorm folded into this layer


def _as_array(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float32).cpu().numpy().copy()  # copy: in-place ReLUs edit it later


def user_modules(model: nn.Module) -> dict[str, nn.Module]:
    """Submodules by the names the user gave them: an output-flattening wrapper (``.model`` plus
    ``.paths``, the export's) is looked through, so names read ``layer3.1.conv2``, not ``model.layer3...``."""
    inner = getattr(model, "model", None)
    root = inner if isinstance(inner, nn.Module) and hasattr(model, "paths") else model
    return {name: m for name, m in root.named_modules() if name}


@dataclass
class Capture:
    """One forward pass: module outputs per call in completion order, the model's outputs, and the
    tensor arguments of every call (references, with their in-place version counters)."""

    activations: list[Activation]
    outputs: list[np.ndarray]
    arguments: dict[tuple[str, int], list[tuple[torch.Tensor, int]]]

    def inputs(self, module: str, call: int) -> list[np.ndarray] | None:
        """The arguments of one call as they were then, or None when an in-place op changed one since
        (an in-place ReLU on its input): then only a second pass tells."""
        args = self.arguments.get((module, call), [])
        if any(t._version != version for t, version in args):
            return None
        return [_as_array(t) for t, _ in args]


def capture(model: nn.Module, feed: Mapping[str, np.ndarray], input_names: list[str],
            modules: Collection[str]) -> Capture:
    """Run ``model`` once on ``feed``, hooked on ``modules`` (and every BatchNorm, for folding)."""
    named = user_modules(model)
    activations: list[Activation] = []
    calls: dict[str, int] = {}
    live: dict[int, Activation] = {}  # storage pointer of a conv/linear output -> its activation
    arguments: dict[tuple[str, int], list[tuple[torch.Tensor, int]]] = {}
    pre_calls: dict[str, int] = {}

    def pre_hook(name: str):
        def record(_module: nn.Module, args) -> None:
            call = pre_calls.get(name, 0)
            pre_calls[name] = call + 1
            arguments[(name, call)] = [(a, a._version) for a in args if isinstance(a, torch.Tensor)]
        return record

    def hook(name: str):
        def record(module: nn.Module, args, output) -> None:
            if isinstance(module, _BATCHNORMS):
                source = args[0] if args and isinstance(args[0], torch.Tensor) else None
                folded = live.pop(source.data_ptr(), None) if source is not None else None
                plain = type(module).forward is _BatchNorm.forward
                if folded is not None and plain and isinstance(output, torch.Tensor):
                    folded.value, folded.folded = _as_array(output), name
                    return
                if folded is not None:  # a BatchNorm + activation (timm's BatchNormAct2d): the graph's conv
                    folded.value = None  # output is the BatchNorm's, which eager never returns: not comparable
                if plain:
                    return
            if not isinstance(output, torch.Tensor) or name not in modules:
                return
            act = Activation(name, calls.get(name, 0), len(activations), _as_array(output))
            calls[name] = act.call + 1
            activations.append(act)
            if isinstance(module, _FOLD_TARGETS):
                live[output.data_ptr()] = act
        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in named.items()
               if n and (n in modules or isinstance(m, _BATCHNORMS))]
    handles += [m.register_forward_pre_hook(pre_hook(n)) for n, m in named.items() if n in modules]
    try:
        with torch.no_grad():
            args = [torch.from_numpy(np.ascontiguousarray(feed[n], dtype=np.float32)) for n in input_names]
            result = model(*args)
    finally:
        for h in handles:
            h.remove()
    results = result if isinstance(result, (tuple, list)) else (result,)
    activations = [a for a in activations if a.value is not None]
    return Capture(activations, [_as_array(r) for r in results if isinstance(r, torch.Tensor)], arguments)


def capture_inputs(model: nn.Module, feed: Mapping[str, np.ndarray], input_names: list[str], module: str,
                   call: int) -> list[np.ndarray]:
    """The tensor arguments of one call of ``module`` (a second forward pass, with one pre-hook)."""
    target = user_modules(model)[module]
    seen: list[int] = [0]
    found: list[np.ndarray] = []

    def pre(_module: nn.Module, args) -> None:
        if seen[0] == call:
            found.extend(_as_array(a) for a in args if isinstance(a, torch.Tensor))
        seen[0] += 1

    handle = target.register_forward_pre_hook(pre)
    try:
        with torch.no_grad():
            model(*[torch.from_numpy(np.ascontiguousarray(feed[n], dtype=np.float32)) for n in input_names])
    finally:
        handle.remove()
    return found
