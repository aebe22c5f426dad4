"""The export stage: torch -> ONNX, simplification, checks, metadata, parity, atomic writes."""

from .graph import io_signature, op_counts
from .metadata import read_metadata
from .pipeline import MODEL_FILE, REPORT_FILE, ExportReport, export_model, parity_shapes
from .torch_to_onnx import DEFAULT_OPSET, DYNAMIC_MODES, MIN_OPSET

__all__ = ["DEFAULT_OPSET", "DYNAMIC_MODES", "MIN_OPSET", "MODEL_FILE", "REPORT_FILE", "ExportReport", "export_model",
           "io_signature", "op_counts", "parity_shapes", "read_metadata"]
