"""Precision lives in the ONNX (TensorRT 11 is strongly typed): FP16 conversion, INT8 Q/DQ."""

from .attention import AttentionRegion, find_attention_regions
from .fp16 import Fp16Report, convert_to_fp16
from .int8 import Int8Report, quantize_int8
from ..options import ONNX_PRECISIONS

PRECISIONS = ONNX_PRECISIONS  # the one list, on the ground floor

__all__ = ["PRECISIONS", "AttentionRegion", "Fp16Report", "Int8Report", "convert_to_fp16", "find_attention_regions", "quantize_int8"]
