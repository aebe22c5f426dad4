"""How well float32 itself can compute a model: the floor under any FP32 parity gate.

``float32_floor(module, feeds, input_names=None) -> float`` runs ``module`` (eval, float32) and a
deep copy of it in float64 on the same feeds and returns the worst scaled error
(max |out32 - out64| / max |out64|, the metric of ``compare/parity.py``) over every feed and every
output. ``feeds`` are the parity inputs, one ``{input name: array}`` dict per case; the module is
called positionally in ``input_names`` order (default: each feed's own key order). Outputs may be a
tensor or any nesting of tuples, lists and dicts of tensors; non-tensor leaves are ignored.

A deep, randomly initialised network (e.g. ResNet-50 with the ``parallel`` variant and its
BatchNorms at their initial statistics) amplifies rounding: float32 eager is then itself 1e-5 to
1e-2 away from the exact answer, and any other float32 implementation (ONNX Runtime, with another
summation order) lands about as far away in its own direction. One float32 run is one sample of
that error, and on a chaotic net the sample varies widely: random ``parallel`` ResNet-50 (seed 1,
batch 3) eager was 5.6e-4 from float64, the same eager with its input jittered at float32's
roundoff 2e-4 to 1.4e-2, the folded graph in ONNX Runtime 1.4e-2. So each feed also runs
``JITTERED_RUNS`` more times in float32 with jittered inputs (the float64 reference runs once) and
the floor is the worst of all. The FP32 gate is the larger of the table tolerance and
``FLOOR_MULTIPLE`` times this floor (``tolerances.fp32_gate``, ``tolerances.fp32_tolerance``).

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


# Unit roundoff of float32, and how many float32 runs sample its error on each feed.
_FLOAT32_ROUNDOFF = 2.0 ** -24
JITTERED_RUNS = 3


def _jittered(feed: Mapping[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The feed with every float input scaled by (1 + u r), r uniform in [-1, 1]: as valid a float32
    input as the original, reached by different roundings."""
    out = {}
    for name, value in feed.items():
        array = np.asarray(value)
        if np.issubdtype(array.dtype, np.floating):
            factor = 1 + _FLOAT32_ROUNDOFF * rng.uniform(-1, 1, array.shape)
            array = (array.astype(np.float64) * factor).astype(array.dtype)
        out[name] = array
    return out


def float32_floor(module, feeds: list[dict[str, np.ndarray]], input_names: Sequence[str] | None = None) -> float:
    """Worst scaled error of float32 eager against float64 eager (a deep copy) over ``feeds``, each
    feed run in float32 as given and ``JITTERED_RUNS`` times more with its inputs jittered at float32's
    roundoff (one float32 run is one sample of an error that, on a chaotic net, varies 10-70x).

    ``module`` is not modified. An empty ``feeds`` list gives 0.0 (no evidence of a floor).
    """
    import torch

    if not feeds:
        return 0.0
    reference = copy.deepcopy(module).double()  # same mode as the original
    rng = np.random.default_rng(0)
    worst = 0.0
    for feed in feeds:
        names = list(input_names) if input_names is not None else list(feed)
        try:
            double = _run(reference, feed, names, torch.float64)
        except Exception as exc:  # user code that pins float32 (e.g. torch.zeros(..., dtype=float32))
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise FloorUnavailable(f"the model cannot run in float64 to measure its float32 floor "
                                   f"({type(exc).__name__}: {first})") from exc
        for variant in [feed, *(_jittered(feed, rng) for _ in range(JITTERED_RUNS))]:
            single = _run(module, variant, names, torch.float32)
            worst = max([worst, *(_scaled_error(s, d) for s, d in zip(single, double))])
    return worst
