"""The OpenVINO backend's table entry (light: openvino is imported only when called)."""

from __future__ import annotations

from typing import Any

from ..base import Backend, Runner, onnx_source


def _open(model: Any, **options: Any) -> Runner:
    from .runner import OpenVinoRunner

    return OpenVinoRunner(onnx_source(model), **options)


def _problem() -> str | None:
    from .loader import openvino_problem

    return openvino_problem()


ENTRIES = (Backend("openvino", "onnx", 'OpenVINO 2025+ on the CPU (pip install -e ".[openvino]")',
                   ("precision", "threads", "cache_dir", "keep_attention_f32", "allow_nonfinite", "static_shapes"),
                   _open, _problem, bf16=True),)
