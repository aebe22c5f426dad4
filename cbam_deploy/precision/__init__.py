"""Precision lives in the ONNX (TensorRT 11 is strongly typed): FP16 conversion, INT8 Q/DQ."""

from .attention import AttentionRegion, find_attention_regions
from .fp16 import Fp16Report, convert_to_fp16
from .int8 import Int8Report, quantize_int8

PRECISIONS = ("fp32", "fp16", "int8")

__all__ = ["PRECISIONS", "AttentionRegion", "Fp16Report", "Int8Report", "convert_to_fp16", "find_attention_regions", "quantize_int8"]
