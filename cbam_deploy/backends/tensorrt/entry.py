"""The TensorRT backend's table entry (light: tensorrt and polygraphy load only when called)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..base import Backend, Runner


def _open(model: Any, **options: Any) -> Runner:
    from ...layout import plan_path
    from .runner import TensorRTRunner

    plan = Path(model)
    return TensorRTRunner(plan_path(plan) if plan.is_dir() else plan, **options)


def _problem() -> str | None:
    from .environment import tensorrt_problem

    return tensorrt_problem()


ENTRIES = (Backend("tensorrt", "plan", "TensorRT 10+, Polygraphy and an NVIDIA GPU (the GPU image)",
                   ("allow_nonfinite",), _open, _problem),)
