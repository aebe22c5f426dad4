"""One table of backends and one way to open a runner on any of them.

``BACKENDS`` maps a name to what the backend runs (an ONNX model, a TensorRT plan, a PyTorch
module), what it needs, how to open its runner and how to ask, quietly, whether it can run here.
``cbam-validate``, ``cbam-bench``, ``cbam-infer`` and ``cbam-serve`` all take their ``--backend``
names and runners from here. Importing this module imports no torch, onnx, onnxruntime or TensorRT.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..errors import UsageError
from .base import Runner


@dataclass(frozen=True)
class Backend:
    name: str
    runs: str  # "onnx" (a model file or bytes), "plan" (a TensorRT plan file) or "module" (PyTorch)
    needs: str  # what must be installed/present, for messages and --help
    options: tuple[str, ...]  # keyword options its runner takes
    opener: Callable[..., Runner]
    problem: Callable[[], str | None]  # why it cannot run here (quiet), or None
    bf16: bool = False  # runs bfloat16 natively (from the FP32 ONNX, option precision="bf16")


def _onnx_source(model: Any) -> str | Path | bytes:
    """An ONNX path or bytes from a path, bytes, or an exported model (anything with ``onnx_path``)."""
    source = getattr(model, "onnx_path", model)
    if not isinstance(source, (str, Path, bytes)):
        raise UsageError(f"an ONNX backend takes a model path, bytes or an exported model, not {type(model).__name__}")
    return source


def _open_onnxruntime(provider: str) -> Callable[..., Runner]:
    def open_(model: Any, **options: Any) -> Runner:
        from .onnxruntime import OnnxRuntimeRunner

        return OnnxRuntimeRunner(_onnx_source(model), provider=provider, **options)

    return open_


def _ort_problem(provider: str) -> Callable[[], str | None]:
    def problem() -> str | None:
        from ..errors import MissingDependencyError
        from .onnxruntime import provider_problem

        try:
            return provider_problem(provider)
        except MissingDependencyError as exc:
            return str(exc)

    return problem


def _open_tensorrt(model: Any, **options: Any) -> Runner:
    from ..layout import plan_path
    from .tensorrt.runner import TensorRTRunner

    plan = Path(model)
    return TensorRTRunner(plan_path(plan) if plan.is_dir() else plan, **options)


def _tensorrt_problem() -> str | None:
    from .tensorrt.environment import tensorrt_problem

    return tensorrt_problem()


def _open_torch(model: Any, **options: Any) -> Runner:
    """A module with ``inputs``/``output_names`` options, or an exported model (rebuilt eager)."""
    if hasattr(model, "eager_runner"):
        return model.eager_runner(**({"module": options["module"]} if "module" in options else {}))
    from .torch_eager import TorchRunner

    missing = [k for k in ("inputs", "output_names") if k not in options]
    if missing:
        raise UsageError(f"the torch backend over a bare module needs {', '.join(missing)}")
    return TorchRunner(model, options["inputs"], options["output_names"],
                       allow_nonfinite=options.get("allow_nonfinite", False))


def _open_openvino(model: Any, **options: Any) -> Runner:
    from .openvino import OpenVinoRunner

    return OpenVinoRunner(_onnx_source(model), **options)


def _openvino_problem() -> str | None:
    from .openvino import openvino_problem

    return openvino_problem()


_ORT_OPTIONS = ("threads", "spinning", "optimization_level", "optimized_cache", "allow_nonfinite")
_ORT_NEEDS = {"cpu": "onnxruntime (or onnxruntime-gpu)",
              "cuda": "onnxruntime-gpu, an NVIDIA GPU, CUDA 13 (cuBLAS, cuRAND, runtime) and cuDNN 9",
              "tensorrt": "onnxruntime-gpu, an NVIDIA GPU, CUDA 13, cuDNN 9 and TensorRT 10 libraries"}

BACKENDS: dict[str, Backend] = {
    "torch": Backend("torch", "module", "torch (CPU is enough)", ("inputs", "output_names", "module",
                                                                  "allow_nonfinite"), _open_torch, lambda: None),
    **{f"onnxruntime-{p}": Backend(f"onnxruntime-{p}", "onnx", _ORT_NEEDS[p], _ORT_OPTIONS, _open_onnxruntime(p),
                                   _ort_problem(p)) for p in ("cpu", "cuda", "tensorrt")},
    "tensorrt": Backend("tensorrt", "plan", "TensorRT 10+, Polygraphy and an NVIDIA GPU (the GPU image)",
                        ("allow_nonfinite",), _open_tensorrt, _tensorrt_problem),
    "openvino": Backend("openvino", "onnx", 'OpenVINO 2025+ on the CPU (pip install -e ".[openvino]")',
                        ("precision", "threads", "cache_dir", "keep_attention_f32", "allow_nonfinite"),
                        _open_openvino, _openvino_problem, bf16=True),
}

#: The backends that run an exported ONNX model or its plan (what validate/bench/serve compare).
DEPLOY_BACKENDS = tuple(name for name, b in BACKENDS.items() if b.runs != "module")


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
