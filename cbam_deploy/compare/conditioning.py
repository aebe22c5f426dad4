"""How well float32 itself can compute a model: the floor under any FP32 parity gate.

``float32_floor(module, feeds, input_names=None) -> float`` runs ``module`` (eval, float32) and a
deep copy of it in float64 on the same feeds and returns the worst scaled error
(max |out32 - out64| / max |out64|, the metric of ``compare/parity.py``) over every feed and every
output. ``feeds`` are the parity inputs, one ``{input name: array}`` dict per case; the module is
called positionally in ``input_names`` order (default: each feed's own key order). Outputs may be a
tensor or any nesting of tuples, lists and dicts of tensors; non-tensor leaves are ignored.

A deep, randomly initialised network (e.g. ResNet-50 with the ``parallel`` variant and its
BatchNorms at their initial statistics) amplifies rounding: float32 eager is then itself ~1e-5
away from the exact answer, and any other float32 implementation (ONNX Runtime, with another
summation order) lands about as far away on the other side. The FP32 gate is therefore the larger
of the table tolerance and ``FLOOR_MULTIPLE`` times this floor (``tolerances.fp32_gate``).

Raises ``FloorUnavailable`` (one line) when the float64 copy cannot run, e.g. a model that builds
float32 tensors itself; callers then keep the table tolerance and say so.
"""

from __future__ import annotations

import copy
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import CheckFailedError


class FloorUnavailable(CheckFailedError):
    """The model could not be run in float64, so its float32 floor is unknown."""


def _leaves(value: Any) -> list[Any]:
    """Tensors of a (nested) output in a fixed order: dicts by key order, sequences by index."""
    import torch

    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, Mapping):
        return [leaf for key in value for leaf in _leaves(value[key])]
    if isinstance(value, (tuple, list)):
        return [leaf for item in value for leaf in _leaves(item)]
    return []


def _scaled_error(out: np.ndarray, ref: np.ndarray) -> float:
    if out.shape != ref.shape or out.size == 0:
        return 0.0 if out.shape == ref.shape else float("inf")
    diff = float(np.abs(out - ref).max())
    scale = float(np.abs(ref).max()) or 1.0  # same convention as compare_output
    return diff / scale if np.isfinite(diff) else float("inf")


def _run(module, feed: Mapping[str, np.ndarray], names: Sequence[str], dtype) -> list[np.ndarray]:
    import torch

    args = []
    for name in names:
        array = np.asarray(feed[name])
        tensor = torch.from_numpy(np.ascontiguousarray(array))
        args.append(tensor.to(dtype) if tensor.is_floating_point() else tensor)
    with torch.inference_mode():
        outputs = _leaves(module(*args))
    return [o.detach().cpu().double().numpy() for o in outputs if o.is_floating_point()]


def float32_floor(module, feeds: list[dict[str, np.ndarray]], input_names: Sequence[str] | None = None) -> float:
    """Worst scaled error of float32 eager against float64 eager (a deep copy) over ``feeds``.

    ``module`` is not modified. An empty ``feeds`` list gives 0.0 (no evidence of a floor).
    """
    import torch

    if not feeds:
        return 0.0
    reference = copy.deepcopy(module).double()  # same mode as the original
    worst = 0.0
    for feed in feeds:
        names = list(input_names) if input_names is not None else list(feed)
        single = _run(module, feed, names, torch.float32)
        try:
            double = _run(reference, feed, names, torch.float64)
        except Exception as exc:  # user code that pins float32 (e.g. torch.zeros(..., dtype=float32))
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise FloorUnavailable(f"the model cannot run in float64 to measure its float32 floor "
                                   f"({type(exc).__name__}: {first})") from exc
        worst = max([worst, *(_scaled_error(s, d) for s, d in zip(single, double))])
    return worst
