"""cbam-deploy: deploy CBAM attention networks from PyTorch to ONNX Runtime, TensorRT and Triton.

Where things are: ``models/`` (variants and host networks), ``fold/`` (BatchNorm folding),
``export/`` (torch -> ONNX, simplify, check, parity), ``backends/`` (runners), ``compare/``
(parity metrics and the tolerance table), ``reference/`` (the reference task), ``cli/``.
"""

from .checkpoint import LoadReport, load_checkpoint
from .errors import CbamDeployError, CheckFailedError, CheckpointError, MissingDependencyError, UsageError
from .export import ExportReport, export_model
from .fold import fold_batchnorms
from .models import create_cbam, create_model, list_hosts, list_variants

__version__ = "0.1.0"

__all__ = [
    "CbamDeployError", "CheckFailedError", "CheckpointError", "ExportReport", "LoadReport",
    "MissingDependencyError", "UsageError", "create_cbam", "create_model", "export_model",
    "fold_batchnorms", "list_hosts", "list_variants", "load_checkpoint",
]
