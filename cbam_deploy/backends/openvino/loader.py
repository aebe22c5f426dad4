"""OpenVINO loader: reads an ONNX model (path or bytes) with ``Core.read_model`` and compiles it for the CPU.

Three things are never left to OpenVINO's defaults, because its defaults change the answer or the timing:

- the inference precision: on a CPU with AVX-512 BF16 or AMX, OpenVINO compiles an FP32 model in
  bfloat16 unless told otherwise. ``INFERENCE_PRECISION_HINT`` is always set from what was asked
  (f32 for fp32, bf16 for bf16) and read back from the compiled model;
- threads and streams: one stream, ``INFERENCE_NUM_THREADS`` when given, thread pinning and core
  reservation off, so that an OpenVINO model timed beside ONNX Runtime in one process does not hold
  cores the other needs (OpenVINO's TBB pool has no spin-wait setting; pinning is what would steal);
- the model cache (``CACHE_DIR``): compiled models are cached in a per-user folder, so a second start
  skips compilation. ``cache_dir=None`` turns it off.

A model with dynamic axes can also be compiled static at given shapes (:meth:`CompiledModelFromOnnx.at_shapes`):
OpenVINO's CPU kernels are faster on static shapes, most of all in INT8 (measured here on the Q/DQ
ResNet-50 exports, batch 1, quiet: 13 % less latency for `original`, 1-5 % for the others).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from ...errors import MissingDependencyError, UsageError

EXTRA_HINT = 'pip install -e ".[openvino]" (or pip install "openvino>=2025")'
#: cbam-deploy precision -> OpenVINO's INFERENCE_PRECISION_HINT. fp16/int8 ONNX files carry their own
#: precision (FP16 weights, Q/DQ nodes): they are compiled with the f32 hint, so that nothing else is lowered.
HINTS = {"fp32": "f32", "bf16": "bf16"}
DEFAULT_CACHE = "auto"  # the per-user folder of default_cache_dir()
CACHE_ENV = "CBAM_DEPLOY_OPENVINO_CACHE"  # a folder, or "off"


def import_openvino():
    """``openvino``, or one line naming the extra to install."""
    try:
        import openvino
    except ImportError:
        raise MissingDependencyError(f"OpenVINO is not installed: {EXTRA_HINT}") from None
    return openvino


def default_cache_dir() -> Path | None:
    """Where compiled models are cached: $CBAM_DEPLOY_OPENVINO_CACHE (a folder, or "off" for none),
    else $XDG_CACHE_HOME/cbam-deploy/openvino (~/.cache/cbam-deploy/openvino)."""
    chosen = os.environ.get(CACHE_ENV)
    if chosen is not None:
        return None if chosen.strip().lower() in ("off", "none", "") else Path(chosen).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cbam-deploy" / "openvino"


def openvino_problem() -> str | None:
    """Why the OpenVINO backend cannot run here (one line), or None. Quiet: compiles nothing."""
    try:
        ov = import_openvino()
    except MissingDependencyError as exc:
        return str(exc)
    devices = ov.Core().available_devices
    if "CPU" not in devices:
        return f"OpenVINO lists no CPU device here (devices: {', '.join(devices) or 'none'})"
    return None


def cpu_capabilities(core=None) -> list[str]:
    """OpenVINO's CPU ``OPTIMIZATION_CAPABILITIES`` (e.g. FP32, BF16, INT8)."""
    core = core or import_openvino().Core()
    return [str(c) for c in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")]


def bf16_problem(core=None) -> str | None:
    """Why bf16 cannot run natively on this CPU (one line naming the capability), or None."""
    core = core or import_openvino().Core()
    caps = cpu_capabilities(core)
    if "BF16" in caps:
        return None
    name = core.get_property("CPU", "FULL_DEVICE_NAME")
    return (f"bf16 needs a CPU with AVX-512 BF16 or AMX: OpenVINO's CPU OPTIMIZATION_CAPABILITIES here are "
            f"{', '.join(caps)} (no BF16) on {name}; use fp32 or int8")


def _resolve_cache(cache_dir: str | Path | None) -> Path | None:
    if cache_dir is None:
        return None
    path = default_cache_dir() if str(cache_dir) == DEFAULT_CACHE else Path(cache_dir)
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
    return path


class CompiledModelFromOnnx:
    """Loader: calling it returns one ``CompiledModel`` on the CPU (Polygraphy's loader shape).

    ``precision``: "fp32" or "bf16" (the inference precision; see ``HINTS``). ``keep_attention_f32``
    (bf16 only): the CBAM attention regions (``precision.attention``'s finder) are marked to keep
    their original f32 precision (``keep_f32.mark_attention_f32``). After a call, ``properties``
    holds what was asked, ``cache_hit`` whether the compiled model came from the cache (None when the
    cache is off) and ``kept_f32`` how many OpenVINO ops were marked.
    """

    def __init__(self, model: str | Path | bytes, *, precision: str = "fp32", threads: int | None = None,
                 cache_dir: str | Path | None = DEFAULT_CACHE, keep_attention_f32: bool = True) -> None:
        if precision not in HINTS:
            raise UsageError(f"OpenVINO inference precision {precision!r} is not one of {', '.join(HINTS)} "
                             "(fp16 and int8 come from the ONNX file itself and run with the f32 hint)")
        if threads is not None and threads <= 0:
            raise UsageError(f"threads must be positive, got {threads}")
        self.model = model
        self.precision = precision
        self.threads = threads
        self.cache_dir = cache_dir
        self.keep_attention_f32 = keep_attention_f32
        self.properties: dict[str, Any] = {}
        self.cache_hit: bool | None = None
        self.kept_f32 = 0
        self._io_names: set[str] | None = None

    def _check_file(self) -> None:
        if not isinstance(self.model, bytes) and not Path(self.model).is_file():
            raise UsageError(f"no ONNX model at {self.model}")

    def _read(self, core):
        self._check_file()
        source = self.model
        try:  # ONNX bytes: the frontend is found from the content
            return core.read_model(source, b"") if isinstance(source, bytes) else core.read_model(str(source))
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses with multi-line C++ context
            raise UsageError(f"OpenVINO could not read the model: {_first_line(exc)}") from None

    def _source(self, core, cache: Path | None):
        """What to compile. A file path where possible: with the cache on, OpenVINO then finds the
        compiled model without reading the ONNX at all (measured on ResNet-50: 0.29 s against 0.64 s
        read + cached compile). bf16 with attention kept f32 compiles the marked IR (cached too)."""
        if self.precision == "bf16" and self.keep_attention_f32:
            from .keep_f32 import marked_model

            source, self.kept_f32 = marked_model(core, lambda: self._read(core), self.model, cache)
            return source
        if isinstance(self.model, bytes):
            return self._read(core)
        self._check_file()
        return str(self.model)

    def io_names(self) -> set[str]:
        """The ONNX graph's input and output names (parsed once, only when a port is ambiguous)."""
        if self._io_names is None:
            self._io_names = _onnx_io_names(self.model)
        return self._io_names

    def __call__(self):
        return self._compile()

    def at_shapes(self, shapes: dict[str, tuple[int, ...]]):
        """The same model compiled static at ``shapes`` (input name -> shape), with the same properties."""
        return self._compile(shapes)

    def _compile(self, shapes: dict[str, tuple[int, ...]] | None = None):
        ov = import_openvino()
        core = ov.Core()
        if self.precision == "bf16":
            problem = bf16_problem(core)
            if problem:
                raise MissingDependencyError(problem)
        self.properties = {"INFERENCE_PRECISION_HINT": HINTS[self.precision], "NUM_STREAMS": 1,
                           "PERFORMANCE_HINT": "LATENCY", "ENABLE_CPU_PINNING": False,
                           "ENABLE_CPU_RESERVATION": False}
        if self.threads:
            self.properties["INFERENCE_NUM_THREADS"] = self.threads
        cache = _resolve_cache(self.cache_dir)
        if cache is not None:
            self.properties["CACHE_DIR"] = str(cache)
        source = self._source(core, cache)
        if shapes is not None:
            source = core.read_model(source) if isinstance(source, str) else source
            # By port: an ONNX input name may be one of several names OpenVINO gives the port.
            by_name = {name: port for port in source.inputs for name in port.get_names()}
            source.reshape({by_name[name]: list(shape) for name, shape in shapes.items()})
        before = _blobs(cache)
        try:
            compiled = core.compile_model(source, "CPU", self.properties)
        except Exception as exc:
            raise UsageError(f"OpenVINO could not read or compile the model for CPU: {_first_line(exc)}") from None
        if shapes is None:  # cache_hit describes the start (the dynamic compile), not a later specialization
            self.cache_hit = None if cache is None else not (_blobs(cache) - before)
        _check_precision(compiled, HINTS[self.precision])
        return compiled


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:300]


def _blobs(cache: Path | None) -> set[str]:
    return set(os.listdir(cache)) if cache is not None else set()


def _onnx_io_names(source: str | Path | bytes) -> set[str]:
    """The ONNX graph's input/output names: OpenVINO gives a port several tensor names (a Cast's output
    and the graph output it feeds, e.g.) and ``get_any_name`` may return any of them."""
    import onnx

    proto = (onnx.load_from_string(source) if isinstance(source, bytes)
             else onnx.load(str(source), load_external_data=False))
    return {v.name for v in (*proto.graph.input, *proto.graph.output)}


def port_name(port, onnx_names) -> str:
    """The name of a compiled model's port: its one name, or (several) the ONNX graph's own name
    among them; ``onnx_names`` is called only then."""
    names = sorted(port.get_names())
    if len(names) == 1:
        return names[0]
    preferred = onnx_names() if onnx_names else set()
    return next((n for n in names if n in preferred), port.get_any_name())


def precision_of(compiled) -> str:
    """The compiled model's own inference precision, as OpenVINO names it (f32, bf16, f16)."""
    value = compiled.get_property("INFERENCE_PRECISION_HINT")
    return value.get_type_name() if hasattr(value, "get_type_name") else str(value)


def _check_precision(compiled, wanted: str) -> None:
    """The compiled model's own INFERENCE_PRECISION_HINT must be what was asked: never a silent bf16."""
    actual = precision_of(compiled)
    if actual != wanted:
        raise MissingDependencyError(f"asked OpenVINO for inference precision {wanted} but the compiled model "
                                     f"runs {actual}")


def describe_environment() -> str:
    """One line: OpenVINO's version and the CPU it compiles for (for reports)."""
    ov = import_openvino()
    core = ov.Core()
    return (f"OpenVINO {ov.get_version()} on {core.get_property('CPU', 'FULL_DEVICE_NAME')} "
            f"({', '.join(cpu_capabilities(core))}; Python {sys.version.split()[0]})")
