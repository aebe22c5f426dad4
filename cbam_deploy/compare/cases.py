"""The test cases and their inputs, in one place: which shapes parity runs at, and the feeds.

Never only the traced shape: an exporter that baked a size into the graph must be caught. When
height and width are dynamic, one case runs at a resolution that was not traced; networks with a
stride (a detector's 32) accept only some resolutions, so the candidates are multiples of 32 and
64 first, and the caller keeps the first one the eager model accepts (``choose_resolution``).
Builds nothing and runs no model: callers pass a function that tries one.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping, Protocol, Sequence

import numpy as np

from ..errors import UsageError

Shapes = list[tuple[int, ...]]
Case = tuple[str, Shapes]
#: How much larger than the traced size the untraced case is, before rounding to a stride.
UNTRACED_SCALE = 1.25
#: Strides tried in order when rounding the untraced size: detectors' 32, then 64, then finer.
STRIDES = (32, 64, 16, 8)
PARITY_SEED = 0


class TensorSpecLike(Protocol):
    """What a feed needs of an input's spec (``backends.base.TensorSpec`` fits)."""

    name: str


def _with_batch(shapes: Sequence[tuple[int, ...]], axes: Sequence[Mapping[int, str]], n: int) -> Shapes:
    return [(n, *s[1:]) if 0 in a else tuple(s) for s, a in zip(shapes, axes)]


def _label(shapes: Shapes, suffix: str = "") -> str:
    first = shapes[0]
    where = f" @ {'x'.join(map(str, first[2:]))}" if len(first) > 2 else ""
    return f"batch {first[0]}{where}{suffix}"


def hw_dynamic(trace_shapes: Sequence[tuple[int, ...]], axes: Sequence[Mapping[int, str]]) -> bool:
    """Whether some image input (rank >= 4) has dynamic height and width."""
    return any(len(s) >= 4 and (len(s) - 2) in a for s, a in zip(trace_shapes, axes))


def traced_cases(trace_shapes: Sequence[tuple[int, ...]], axes: Sequence[Mapping[int, str]]) -> list[Case]:
    """Cases at the traced resolution: batch 1 and 3 when the batch is dynamic, else the traced batch."""
    batches = [1, 3] if any(0 in a for a in axes) else [trace_shapes[0][0]]
    return [(_label(s), s) for s in (_with_batch(trace_shapes, axes, n) for n in batches)]


def untraced_candidates(hw: tuple[int, int]) -> list[tuple[int, int]]:
    """Resolutions to try for the untraced case, best first: ~1.25x rounded up to each stride, then 2x.

    A network with stride s accepts multiples of s; rounding up (never to the traced size) keeps
    the case a different resolution from the traced one.
    """
    out: list[tuple[int, int]] = []
    for stride in STRIDES:
        size = tuple(max(stride, math.ceil(d * UNTRACED_SCALE / stride) * stride) for d in hw)
        if size != tuple(hw) and size not in out:
            out.append(size)  # type: ignore[arg-type]
    doubled = (hw[0] * 2, hw[1] * 2)
    if doubled not in out:
        out.append(doubled)
    return out


def untraced_case(trace_shapes: Sequence[tuple[int, ...]], axes: Sequence[Mapping[int, str]],
                  hw: tuple[int, int]) -> Case:
    """The case at batch 2 (when dynamic) and resolution ``hw`` for every image input with dynamic H, W."""
    shapes = [(*s[:-2], *hw) if len(s) >= 4 and (len(s) - 2) in a else tuple(s)
              for s, a in zip(_with_batch(trace_shapes, axes, 2), axes)]
    return _label(shapes, " (not traced)"), shapes


def choose_resolution(trace_shapes: Sequence[tuple[int, ...]], axes: Sequence[Mapping[int, str]],
                      accepts: Callable[[Case], str | None], *, chosen: tuple[int, int] | None = None) -> Case:
    """The untraced case at the first candidate resolution the model accepts.

    ``accepts(case)`` returns None when the model runs at that case, else a one-line reason.
    ``chosen`` (``--parity-shape``) is the only one tried. Raises ``UsageError`` naming what failed.
    """
    hw = tuple(next(s for s, a in zip(trace_shapes, axes) if len(s) >= 4 and (len(s) - 2) in a)[-2:])
    if chosen is not None and tuple(chosen) == hw:
        raise UsageError(f"--parity-shape {chosen[0]}x{chosen[1]} is the traced resolution; parity needs another one")
    tried = []
    for candidate in ([tuple(chosen)] if chosen is not None else untraced_candidates(hw)):  # type: ignore[arg-type]
        case = untraced_case(trace_shapes, axes, candidate)  # type: ignore[arg-type]
        reason = accepts(case)
        if reason is None:
            return case
        tried.append((candidate, reason))
    sizes = ", ".join(f"{h}x{w}" for (h, w), _ in tried)
    if chosen is not None:
        raise UsageError(f"the model itself fails at --parity-shape {sizes} (its limit, in eager PyTorch): {tried[0][1]}")
    raise UsageError(f"the model itself (eager PyTorch) fails at every untraced resolution tried ({sizes}): "
                     f"{tried[0][1]}; pass --parity-shape HxW with a size it accepts, or --dynamic batch")


def parity_shapes(trace_shapes: Sequence[tuple[int, ...]], axes: Sequence[Mapping[int, str]]) -> list[Case]:
    """The parity cases without trying the model: the traced cases, and the first untraced candidate."""
    cases = traced_cases(trace_shapes, axes)
    if hw_dynamic(trace_shapes, axes):
        hw = tuple(next(s for s, a in zip(trace_shapes, axes) if len(s) >= 4 and (len(s) - 2) in a)[-2:])
        cases.append(untraced_case(trace_shapes, axes, untraced_candidates(hw)[0]))  # type: ignore[arg-type]
    return cases


def validation_cases(model, batch_sizes: Sequence[int], resolutions: Sequence[tuple[int, int]] | None) -> list[Case]:
    """(label, one shape per input) for every batch size x resolution the graph accepts.

    ``model`` is an opened export (``traced_shapes``, ``input_dynamic_axes()``). Batch sizes apply to
    inputs with a dynamic batch axis; resolutions to image inputs (rank 4) with dynamic H and W.
    Without ``resolutions``: the traced one, plus the untraced one the export checked (recorded as
    ``parity_resolution``; for older exports, the first untraced candidate).
    """
    traced, dynamic = model.traced_shapes, model.input_dynamic_axes()
    batch_dynamic = any(0 in d for d in dynamic)
    hw_dyn = [len(s) == 4 and {2, 3} <= set(d) for s, d in zip(traced, dynamic)]
    batches = list(batch_sizes) if batch_dynamic else [traced[0][0]]
    if not any(hw_dyn):
        sizes: list[dict[int, tuple[int, int]]] = [{}]
    elif resolutions is None:
        chosen = (getattr(model, "metadata", None) or {}).get("parity_resolution")  # what the export checked
        sizes = [{}, {i: tuple(chosen) if chosen else untraced_candidates(tuple(traced[i][2:]))[0]
                      for i, dyn in enumerate(hw_dyn) if dyn}]
    else:
        sizes = [{i: tuple(r) for i, dyn in enumerate(hw_dyn) if dyn} for r in resolutions]  # type: ignore[misc]
    cases = []
    for size in sizes:
        for n in batches:
            shapes = [(n if 0 in d else s[0], *s[1:2], *size[i]) if i in size else (n if 0 in d else s[0], *s[1:])
                      for i, (s, d) in enumerate(zip(traced, dynamic))]
            cases.append((_label(shapes), shapes))
    return cases


FeedMaker = Callable[[Sequence[TensorSpecLike], Sequence[tuple[int, ...]], np.random.Generator], dict[str, np.ndarray]]


def random_feed(specs: Sequence[TensorSpecLike], shapes: Sequence[tuple[int, ...]],
                rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Seeded standard-normal inputs: enough for FP32, where only arithmetic is compared."""
    return {s.name: rng.standard_normal(shape).astype(np.float32) for s, shape in zip(specs, shapes)}


def sample_feed(data: np.ndarray) -> FeedMaker:
    """Inputs drawn from real samples (N x C x H x W), resized when a case asks for another size.

    FP16/INT8 parity needs in-distribution inputs: an INT8 model calibrated on images saturates on
    random noise, which would measure the noise, not the model.
    """

    def make(specs: Sequence[TensorSpecLike], shapes: Sequence[tuple[int, ...]],
             rng: np.random.Generator) -> dict[str, np.ndarray]:
        (spec,), (shape,) = specs, shapes
        rows = data[rng.integers(0, len(data), size=shape[0])]
        if rows.shape[2:] != tuple(shape[2:]):
            rows = _resize(rows, tuple(shape[2:]))
        return {spec.name: np.ascontiguousarray(rows, dtype=np.float32)}

    return make


def _resize(rows: np.ndarray, size: tuple[int, ...]) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    return F.interpolate(torch.from_numpy(np.ascontiguousarray(rows)), size=size, mode="bilinear",
                         align_corners=False).numpy()
