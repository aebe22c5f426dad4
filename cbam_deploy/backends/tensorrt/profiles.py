"""Optimization profiles (min/opt/max shapes) for a TensorRT engine, derived from the ONNX's
dynamic axes and the export metadata, or given by the user. Pure Python: tested without TensorRT."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from ...errors import UsageError
from ...shapes import parse_named_shapes

DEFAULT_MAX_BATCH = 32


@dataclass(frozen=True)
class Profile:
    """min/opt/max shape per input name."""

    shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]

    def to_dict(self) -> dict[str, dict[str, list[int]]]:
        return {name: {"min": list(a), "opt": list(b), "max": list(c)} for name, (a, b, c) in self.shapes.items()}

    def contains(self, name: str, shape: Sequence[int]) -> bool:
        lo, _, hi = self.shapes[name]
        return len(shape) == len(lo) and all(a <= s <= b for a, s, b in zip(lo, shape, hi))


def parse_shape_spec(text: str, input_names: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """'input:1x3x64x64' or '1x3x64x64' (single-input models); comma-separated for several inputs."""
    return parse_named_shapes(text, input_names)


def derive_profile(inputs: Sequence[Mapping[str, object]], *, traced_shapes: Mapping[str, Sequence[int]] | None = None,
                   min_shapes: Mapping[str, tuple[int, ...]] | None = None,
                   opt_shapes: Mapping[str, tuple[int, ...]] | None = None,
                   max_shapes: Mapping[str, tuple[int, ...]] | None = None,
                   max_batch: int = DEFAULT_MAX_BATCH) -> Profile:
    """One profile for the model's inputs (``io_signature()['inputs']``: name, dims with str for dynamic).

    Defaults: batch 1 .. max_batch with opt = traced batch (or 1); dynamic H/W from half to twice the
    traced size (opt = traced). User shapes override, and must agree with fixed dims and min<=opt<=max.
    """
    shapes = {}
    for spec in inputs:
        name, dims = str(spec["name"]), list(spec["shape"])  # type: ignore[arg-type]
        traced = list((traced_shapes or {}).get(name) or [d if isinstance(d, int) else 1 for d in dims])
        lo, opt, hi = [], [], []
        for axis, d in enumerate(dims):
            if isinstance(d, int) and d > 0:
                lo.append(d), opt.append(d), hi.append(d)
            elif axis == 0:
                lo.append(1), opt.append(max(1, traced[0])), hi.append(max(max_batch, traced[0]))
            else:
                t = max(1, int(traced[axis]))
                lo.append(max(1, t // 2)), opt.append(t), hi.append(t * 2)
        for given, target in ((min_shapes, lo), (opt_shapes, opt), (max_shapes, hi)):
            if given and name in given:
                shape = list(given[name])
                if len(shape) != len(dims):
                    raise UsageError(f"shape {shape} for {name!r} has {len(shape)} dims; the model's input has {len(dims)}")
                for axis, (s, d) in enumerate(zip(shape, dims)):
                    if isinstance(d, int) and d > 0 and s != d:
                        raise UsageError(f"{name!r} axis {axis} is fixed at {d} in the model; got {s}")
                target[:] = shape
        if not all(a <= b <= c for a, b, c in zip(lo, opt, hi)):
            raise UsageError(f"profile for {name!r} needs min <= opt <= max on every axis; got min {lo}, opt {opt}, max {hi}")
        shapes[name] = (tuple(lo), tuple(opt), tuple(hi))
    return Profile(shapes)
