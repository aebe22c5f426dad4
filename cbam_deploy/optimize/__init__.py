"""Graph optimization for CBAM: a torch-level rewrite before export (whole-map pooling made
global, ``global_pooling.py``) and ONNX-level rewrites after it (``onnx_rewrites.py``)."""

from .global_pooling import globalize_pooling
from .onnx_rewrites import DEFAULT_REWRITES, REWRITES, OptimizeReport, optimize_graph

__all__ = ["DEFAULT_REWRITES", "OptimizeReport", "REWRITES", "globalize_pooling", "optimize_graph"]
