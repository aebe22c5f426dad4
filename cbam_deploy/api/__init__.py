"""The Python API: what the commands do, callable from a training script.

    import cbam_deploy
    report = cbam_deploy.export(model, (torch.randn(1, 3, 224, 224),), out="models", name="mynet")
    cells = cbam_deploy.validate(report.model_dir, eager=model)
    timings = cbam_deploy.benchmark(report.model_dir, eager=model, batch_sizes=(1, 8))
    where = cbam_deploy.profile(report.model_dir, ablation="network")  # latency by module and attention block

One orchestrator per command, each composing the stages below it: ``export`` (fold -> export ->
simplify -> check -> optimize -> precision -> parity -> write), ``validate`` (the backend x precision
matrix), ``benchmark``, ``build`` (TensorRT plans), ``infer``. Every function raises
``CbamDeployError`` subclasses with one-line messages.
"""

from __future__ import annotations

# Imported eagerly, on purpose: a submodule named like its function (``api/validate.py`` holds
# ``validate``) would otherwise replace the function on this package once it is imported. The
# commands import this package inside ``run()``, never for ``--help``.
from .bench import benchmark, profile
from .export import ExportOptions, ExportReport, export
from .validate import Cell, ValidationReport, validate

__all__ = ["Cell", "ExportOptions", "ExportReport", "ValidationReport", "benchmark", "export", "profile", "validate"]
