"""Module -> checked ONNX graph: export (TorchScript or dynamo exporter), named outputs of any
structure, simplification, checks, metadata. Nothing here runs parity or writes a model folder.

Names are re-exported lazily (PEP 562): importing the package does not import torch or onnx.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "check": "graph", "forbidden_ops": "graph", "io_signature": "graph", "op_counts": "graph", "simplify": "graph",
    "specialized_axes": "graph", "package_versions": "metadata", "read_metadata": "metadata",
    "set_metadata": "metadata", "FlatOutputs": "outputs", "flatten_module": "outputs", "flatten_outputs": "outputs",
    "output_axes": "outputs", "dynamic_axes_for": "torch_to_onnx", "export_to_onnx": "torch_to_onnx",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
