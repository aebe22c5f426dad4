"""Localization with its runner: ``compare.localize`` builds and opens nothing, so the API hands it
ONNX Runtime (``provider``: cpu, cuda or tensorrt) over the graph it prepares.

    from cbam_deploy.api.localize import localize
    report = localize("models/m/1/model.onnx", model.eval(), {"input": batch}, precision="fp16")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np

from ..backends import open_runner
from ..compare import localize as _compare
from ..compare.localize import LocalizationReport
from ..compare.tolerances import Tolerance

if TYPE_CHECKING:
    from torch import nn

    from ..backends.base import Runner

__all__ = ["graph_runner", "localization_note", "localize"]


def graph_runner(provider: str = "cpu") -> Callable[[bytes], "Runner"]:
    """Opens ONNX Runtime (``provider``) over a localization graph; NaN/Inf inside it are what is
    looked for, not a reason to stop."""
    def open_(graph: bytes) -> "Runner":
        return open_runner(f"onnxruntime-{provider}", graph, allow_nonfinite=True)

    return open_


def localize(exported_model_or_onnx: Any, eager_module: "nn.Module", feed: Mapping[str, np.ndarray], *,
             precision: str = "fp32", tolerance: Tolerance | None = None, provider: str = "cpu") -> LocalizationReport:
    """The first PyTorch module whose output leaves ``tolerance`` (see ``compare.localize.localize``),
    run on ONNX Runtime's ``provider`` (cpu, cuda, tensorrt)."""
    return _compare.localize(exported_model_or_onnx, eager_module, feed, open_graph=graph_runner(provider),
                             precision=precision, tolerance=tolerance)


def localization_note(model: Any, eager_module: "nn.Module", feed: Mapping[str, np.ndarray], *, precision: str,
                      tolerance: Tolerance | None = None) -> str:
    """``"; <verdict>"`` for a failed parity check's one-line error, localized on ONNX Runtime CPU."""
    return _compare.localization_note(model, eager_module, feed, open_graph=graph_runner("cpu"),
                                      precision=precision, tolerance=tolerance)
