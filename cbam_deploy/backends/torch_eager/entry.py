"""The PyTorch eager backend's table entry (light: torch is imported only when a runner is opened)."""

from __future__ import annotations

from typing import Any

from ...errors import UsageError
from ..base import Backend, Runner


def _open(model: Any, **options: Any) -> Runner:
    """A module with ``inputs``/``output_names`` options, or an exported model (rebuilt eager)."""
    if hasattr(model, "eager_runner"):
        return model.eager_runner(**({"module": options["module"]} if "module" in options else {}))
    from .runner import TorchRunner

    missing = [k for k in ("inputs", "output_names") if k not in options]
    if missing:
        raise UsageError(f"the torch backend over a bare module needs {', '.join(missing)}")
    return TorchRunner(model, options["inputs"], options["output_names"],
                       allow_nonfinite=options.get("allow_nonfinite", False))


ENTRIES = (Backend("torch", "module", "torch (CPU is enough)", ("inputs", "output_names", "module", "allow_nonfinite"),
                   _open, lambda: None),)
