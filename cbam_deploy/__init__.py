"""cbam-deploy: deploy CBAM attention networks from PyTorch to ONNX Runtime, TensorRT and Triton.

Where things are: ``models/`` (variants, host networks, users' own models), ``fold/`` (BatchNorm
folding), ``onnx_export/`` (torch -> ONNX, simplify, check, parity), ``optimize/`` (CBAM-aware graph
rewrites), ``precision/`` (FP16, INT8), ``backends/`` (runners), ``compare/`` (parity metrics and the
tolerance table), ``reference/`` (the reference task), ``cli/`` (the commands), ``api.py`` (the
Python API: ``export``, ``validate``, ``benchmark``).
"""

from .api import ValidationReport, benchmark, export, validate
from .checkpoint import LoadReport, load_checkpoint
from .errors import CbamDeployError, CheckFailedError, CheckpointError, MissingDependencyError, UsageError
from .fold import fold_batchnorms
from .models import create_cbam, create_model, list_hosts, list_variants
from .onnx_export import ExportReport, export_model

__version__ = "0.1.0"

__all__ = [
    "CbamDeployError", "CheckFailedError", "CheckpointError", "ExportReport", "LoadReport",
    "MissingDependencyError", "UsageError", "ValidationReport", "benchmark", "create_cbam", "create_model",
    "export", "export_model", "fold_batchnorms", "list_hosts", "list_variants", "load_checkpoint", "validate",
]
