"""Shapes given as text (``1x3x224x224``, ``input:1x3x64x64``). Ground floor: standard library only,
so the CLI's argument parsing and the backends share one parser without importing each other."""

from __future__ import annotations

from typing import Sequence

from .errors import UsageError


def parse_shape(text: str) -> tuple[int, ...]:
    """'1x3x224x224' -> (1, 3, 224, 224); every dimension a positive integer."""
    parts = text.strip().lower().replace("×", "x").split("x")
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        raise UsageError(f"bad shape {text!r}: expected positive integers joined by 'x', e.g. 1x3x224x224") from None
    if not shape or any(d <= 0 for d in shape):
        raise UsageError(f"bad shape {text!r}: every dimension must be a positive integer")
    return shape


def parse_named_shapes(text: str, input_names: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """'input:1x3x64x64' or '1x3x64x64' (single-input models); comma-separated for several inputs."""
    out: dict[str, tuple[int, ...]] = {}
    for part in text.split(","):
        name, sep, dims = part.strip().rpartition(":")
        if not sep:
            if len(input_names) != 1:
                raise UsageError(f"shape {part!r} has no input name; the model has inputs {list(input_names)}")
            name, dims = input_names[0], part
        if name not in input_names:
            raise UsageError(f"shape for unknown input {name!r}; the model's inputs: {', '.join(input_names)}")
        out[name] = parse_shape(dims)
    return out
