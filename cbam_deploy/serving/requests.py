"""One request checked on its own, before it joins a batch: names, dtype, shape against the
model's fixed and dynamic axes, batch size within ``max_batch_size``, finite values.

Pure numpy (no Triton, no torch, no onnx): the Triton model ``serving.triton_model`` calls it for
every request it receives, and tests call it directly. A problem is one line naming the input,
e.g. ``input 'input': 1 NaN value at [0, 0, 0, 0]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np


@dataclass(frozen=True)
class InputSpec:
    """What the model takes on one input: dims are an int (fixed) or None (dynamic)."""

    name: str
    dtype: np.dtype
    shape: tuple[int | None, ...]

    def describe(self) -> str:
        return "[" + ", ".join(str(d) if d is not None else "?" for d in self.shape) + "]"


def _first_index(mask: np.ndarray) -> list[int]:
    return [int(i) for i in np.unravel_index(int(np.flatnonzero(mask)[0]), mask.shape)]


def _values(count: int, what: str) -> str:
    return f"{count} {what} value{'s' if count != 1 else ''}"


def nonfinite_problem(name: str, array: np.ndarray) -> str | None:
    """``input 'x': 1 NaN value at [0, 0, 0, 0]`` (or Inf), None when every value is finite."""
    if not np.issubdtype(array.dtype, np.floating) or np.isfinite(array).all():
        return None
    for what, mask in (("NaN", np.isnan(array)), ("infinite", np.isinf(array))):
        count = int(mask.sum())
        if count:
            where = " at" if count == 1 else ", first at"
            return f"input {name!r}: {_values(count, what)}{where} {_first_index(mask)}"
    return None  # unreachable: a non-finite float is NaN or infinite


def _shape_problem(spec: InputSpec, array: np.ndarray, max_batch_size: int) -> str | None:
    shape = list(array.shape)
    if len(shape) != len(spec.shape) or any(w is not None and g != w for g, w in zip(shape, spec.shape)):
        return f"input {spec.name!r}: shape {shape}, the model takes {spec.describe()}"
    if max_batch_size and shape[0] > max_batch_size:
        return f"input {spec.name!r}: batch {shape[0]} is over the maximum {max_batch_size}"
    if max_batch_size and shape[0] == 0:
        return f"input {spec.name!r}: an empty batch (0 rows)"
    if any(g == 0 for g in shape[1:]):
        return f"input {spec.name!r}: shape {shape} has an empty axis"
    return None


def check_request(feed: Mapping[str, np.ndarray], specs: Sequence[InputSpec], *, max_batch_size: int) -> str | None:
    """The first problem with one request, as one line; None when the model can run it.

    ``specs`` carry the model's full shapes (batch axis included when ``max_batch_size`` > 0).
    """
    wanted = {s.name: s for s in specs}
    unexpected = [n for n in feed if n not in wanted]
    if unexpected:
        return f"unexpected input {unexpected[0]!r}; the model takes {', '.join(map(repr, wanted))}"
    missing = [n for n in wanted if n not in feed]
    if missing:
        return f"missing input {missing[0]!r}"
    batches = set()
    for name, spec in wanted.items():
        array = feed[name]
        if not isinstance(array, np.ndarray):
            return f"input {name!r}: not an array ({type(array).__name__})"
        if array.dtype != spec.dtype:
            return f"input {name!r}: dtype {array.dtype.name}, the model takes {np.dtype(spec.dtype).name}"
        problem = _shape_problem(spec, array, max_batch_size) or nonfinite_problem(name, array)
        if problem:
            return problem
        batches.add(array.shape[0] if max_batch_size else None)
    if len(batches) > 1:
        return f"inputs disagree on the batch size ({', '.join(map(str, sorted(batches)))})"
    return None


def request_batch(feed: Mapping[str, np.ndarray], specs: Sequence[InputSpec]) -> int:
    """Rows in a (checked) request: its first input's axis 0."""
    return int(feed[specs[0].name].shape[0])
