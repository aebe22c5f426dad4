"""Graph optimization for CBAM: a torch-level rewrite before export (whole-map pooling made
global) and ONNX-level rewrites after it (see ``onnx_rewrites``)."""

from .global_pooling import globalize_pooling

__all__ = ["globalize_pooling"]
