"""One table of backends and one way to open a runner on any of them.

``BACKENDS`` maps a name to what the backend runs (an ONNX model, a TensorRT plan, a PyTorch
module), what it needs, how to open its runner and how to ask, quietly, whether it can run here.
``cbam-validate``, ``cbam-bench``, ``cbam-infer`` and ``cbam-serve`` all take their ``--backend``
names and runners from here. Each backend package declares its own entries beside its runner
(``<package>/entry.py``, as timm registers models); this module collects them. Importing it imports
no torch, onnx, onnxruntime, OpenVINO or TensorRT.
"""

from __future__ import annotations

from typing import Any

from .. import options
from ..errors import UsageError
from .base import Backend, Runner
from .onnxruntime.entry import ENTRIES as _ONNXRUNTIME
from .openvino.entry import ENTRIES as _OPENVINO
from .tensorrt.entry import ENTRIES as _TENSORRT
from .torch_eager.entry import ENTRIES as _TORCH

__all__ = ["BACKENDS", "DEPLOY_BACKENDS", "Backend", "backend_problem", "get_backend", "open_runner"]

#: Every backend, collected from the entries each backend package declares beside its runner.
BACKENDS: dict[str, Backend] = {b.name: b for b in (*_TORCH, *_ONNXRUNTIME, *_TENSORRT, *_OPENVINO)}

#: The backends that run an exported ONNX model or its plan (what validate/bench/serve compare):
#: ``options.BACKENDS`` is the one list of their names (light, for ``--help``); the table must match it.
DEPLOY_BACKENDS = options.BACKENDS
if {n for n, b in BACKENDS.items() if b.runs != "module"} != set(DEPLOY_BACKENDS):  # pragma: no cover
    raise ImportError(f"backend table {sorted(BACKENDS)} does not match options.BACKENDS {DEPLOY_BACKENDS}: "
                      "declare a new backend in both")


def get_backend(name: str) -> Backend:
    """The table's entry for ``name``, or ``UsageError`` listing the valid names."""
    if name not in BACKENDS:
        raise UsageError(f"unknown backend {name!r}; valid: {', '.join(BACKENDS)}")
    return BACKENDS[name]


def backend_problem(name: str) -> str | None:
    """Why backend ``name`` cannot run here, in one line, or None. Prints nothing, loads no session."""
    return get_backend(name).problem()


def open_runner(backend: str, model: Any, **options: Any) -> Runner:
    """An inactive runner of ``backend`` over ``model`` (ONNX path/bytes/exported model, plan path or
    folder, or module, per ``BACKENDS[backend].runs``). Activate it with ``with`` (or an ExitStack)."""
    entry = get_backend(backend)
    unknown = sorted(set(options) - set(entry.options))
    if unknown:
        raise UsageError(f"backend {backend!r} takes no option {', '.join(unknown)}; it takes: "
                         f"{', '.join(entry.options) or 'none'}")
    return entry.opener(model, **options)
