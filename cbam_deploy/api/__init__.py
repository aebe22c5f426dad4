"""The Python API: what the commands do, callable from a training script.

    import cbam_deploy
    report = cbam_deploy.export(model, (torch.randn(1, 3, 224, 224),), out="models", name="mynet")
    cells = cbam_deploy.validate(report.model_dir, eager=model)
    timings = cbam_deploy.benchmark(report.model_dir, eager=model, batch_sizes=(1, 8))

One orchestrator per command, each composing the stages below it: ``export`` (fold -> export ->
simplify -> check -> optimize -> precision -> parity -> write), ``validate`` (the backend x precision
matrix), ``benchmark``, ``build`` (TensorRT plans), ``infer``. Every function raises
``CbamDeployError`` subclasses with one-line messages. Submodules load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "export": "export", "ExportOptions": "export", "ExportReport": "export",
    "validate": "validate", "ValidationReport": "validate", "Cell": "validate",
    "benchmark": "bench",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'cbam_deploy.api' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    globals()[name] = value
    return value
