"""cbam-deploy: deploy CBAM attention networks from PyTorch to ONNX Runtime, TensorRT and Triton.

The pipeline runs one way, one floor per stage: ``models/`` (variants, hosts, users' networks) ->
``fold/`` -> ``onnx_export/`` -> ``optimize/`` -> ``precision/`` -> ``backends/`` (runners) ->
``compare/`` (parity, localization) -> ``serving/`` -> ``api/`` (orchestrators) -> ``cli/``.

Names below are imported on first use (PEP 562), so ``import cbam_deploy`` and every command's
``--help`` stay free of torch and onnx.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# In a cbam-* console script, SIGINT/SIGTERM while the command's imports run print one line (no
# traceback) and leave nothing; library users keep their own handlers (see interrupts.py).
from . import interrupts as _interrupts  # noqa: E402  (standard library only)

_interrupts.install_for_console_script()

# public name -> module that defines it
_LAZY = {
    "export": "cbam_deploy.api", "validate": "cbam_deploy.api", "benchmark": "cbam_deploy.api",
    "profile": "cbam_deploy.api",
    "ExportOptions": "cbam_deploy.api", "ValidationReport": "cbam_deploy.api",
    "ExportReport": "cbam_deploy.api",
    "LoadReport": "cbam_deploy.checkpoint", "load_checkpoint": "cbam_deploy.checkpoint",
    "CbamDeployError": "cbam_deploy.errors", "CheckFailedError": "cbam_deploy.errors",
    "CheckpointError": "cbam_deploy.errors", "MissingDependencyError": "cbam_deploy.errors",
    "UsageError": "cbam_deploy.errors",
    "fold_batchnorms": "cbam_deploy.fold",
    "create_cbam": "cbam_deploy.models", "create_model": "cbam_deploy.models",
    "list_hosts": "cbam_deploy.models", "list_variants": "cbam_deploy.models",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'cbam_deploy' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
