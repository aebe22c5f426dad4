"""``cbam_deploy.api.export``: one export for every model source, as a package of stages.

- ``run``: ``ExportOptions``, ``ExportReport``, ``export_source`` and ``export`` (the orchestrator)
- ``sources``: where the module comes from (``BuiltinSource``, ``FactorySource``, ``ModuleSource``)
- ``stages``: prepare, fold, export, simplify, check, optimize, write
- ``precision`` and ``keep_float``: FP16/INT8 stages and the ``--keep-float`` search
- ``parity``: ONNX Runtime against PyTorch eager, judged per case
"""

from __future__ import annotations

from .run import ExportOptions, ExportReport, export, export_source
from .sources import BuiltinSource, FactorySource, ModelSource, ModuleSource, SourceModel

__all__ = ["BuiltinSource", "ExportOptions", "ExportReport", "FactorySource", "ModelSource", "ModuleSource",
           "SourceModel", "export", "export_source"]
