"""ONNX Runtime loaders (Polygraphy's split): what makes a session, and its optimized-model cache.

``onnxruntime-gpu`` lists the CUDA and TensorRT providers even on a machine without a GPU, prints
raw loader errors (``Failed to load library ... libcublasLt.so.13``, ``EP Error``, ``Falling back to
['CPUExecutionProvider']``) and then silently runs on the CPU. Here a GPU provider is probed first,
quietly (the provider library's dependencies and the CUDA runtime's device count); the session is
created with the native output captured; and ``session.get_providers()`` is compared with what was
asked. Any mismatch is one ``MissingDependencyError`` line.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Iterator

from ...errors import MissingDependencyError, UsageError

PROVIDER_ALIASES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}
_PROVIDER_LIBRARY = {"cuda": ("libonnxruntime_providers_cuda.so", "CUDA"),
                     "tensorrt": ("libonnxruntime_providers_tensorrt.so", "TensorRT/CUDA")}
# Loaded by the CUDA provider at session creation (dlopen), not linked: loaded here first when they are
# in NVIDIA's wheels (off the loader path) so that ONNX Runtime finds them; a missing one shows up as
# the session's own error, captured into one line.
_RUNTIME_LOADED = ("libcudnn.so.9", "libcufft.so.12", "libnvrtc.so.13")
OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")
# The CUDA provider computes FP32 Conv/MatMul in TF32 unless told not to (measured on an H100: FP32
# parity against eager 1.4e-4..3.4e-4 scaled, over the 1e-4 FP32 tolerance). FP32 means FP32 here,
# as in the TensorRT path (Polygraphy's CreateConfig leaves TF32 off).
_PROVIDER_OPTIONS = {"cuda": {"use_tf32": "0"}}


def import_ort():
    """``onnxruntime``, or one line saying how to install it."""
    try:
        import onnxruntime
    except ImportError:
        raise MissingDependencyError("ONNX Runtime is not installed: pip install onnxruntime "
                                     "(or onnxruntime-gpu on Linux x86_64)") from None
    return onnxruntime


def provider_problem(provider: str) -> str | None:
    """Why ``provider`` cannot run here (one line), or None. Quiet: loads no provider, prints nothing."""
    if provider not in PROVIDER_ALIASES:
        raise UsageError(f"unknown provider {provider!r}; valid: {', '.join(PROVIDER_ALIASES)}")
    ort = import_ort()
    wanted = PROVIDER_ALIASES[provider]
    available = ort.get_available_providers()
    if wanted not in available:
        return (f"provider {provider!r} ({wanted}) is not in this onnxruntime build (available: "
                f"{', '.join(available)}); install onnxruntime-gpu")
    if provider == "cpu":
        return None
    from ..cuda_runtime import probe
    from ..native import load_library, missing_libraries

    library, label = _PROVIDER_LIBRARY[provider]
    path = Path(ort.__file__).parent / "capi" / library
    if path.is_file():
        missing = missing_libraries(path)
        if missing:
            return f"{label} libraries not found: {', '.join(missing)}"
        for soname in _RUNTIME_LOADED:
            load_library(soname)
    cuda = probe()
    if not cuda.gpus:
        return f"provider {provider!r} needs an NVIDIA GPU: {cuda.problem}"
    return None


@contextlib.contextmanager
def captured_native_output() -> Iterator[list[str]]:
    """Send file descriptors 1 and 2 to a temporary file for the block; yields a list that holds
    the captured text afterwards. ONNX Runtime's C++ logger and its Python fallback messages write
    there directly, so ``contextlib.redirect_stdout`` would not catch them."""
    captured: list[str] = []
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield captured
        finally:
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            sink.seek(0)
            captured.append(sink.read().decode(errors="replace"))


def _first_native_error(text: str) -> str:
    for line in text.splitlines():
        if "error" in line.lower() or "failed" in line.lower():
            return line.strip()[:300]
    return ""


def _options(ort, threads: int | None, spinning: bool, optimization_level: str,
             optimized_model_path: str | Path | None):
    levels = dict(zip(OPTIMIZATION_LEVELS, (ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
                                            ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                                            ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                                            ort.GraphOptimizationLevel.ORT_ENABLE_ALL)))
    if optimization_level not in levels:
        raise UsageError(f"unknown optimization level {optimization_level!r}; valid: {', '.join(levels)}")
    options = ort.SessionOptions()
    options.graph_optimization_level = levels[optimization_level]
    options.log_severity_level = 3  # errors only; a provider fallback is turned into our own error below
    if threads:
        options.intra_op_num_threads = threads
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if optimized_model_path is not None:
        options.optimized_model_filepath = str(optimized_model_path)
    return options


def create_session(model: str | Path | bytes, *, provider: str = "cpu", threads: int | None = None,
                   spinning: bool = True, optimization_level: str = "all",
                   optimized_model_path: str | Path | None = None, profile_prefix: str | Path | None = None):
    """An ``InferenceSession`` on exactly the provider asked for, or a one-line error saying why not.

    ``spinning=False`` turns intra-op spin-waiting off: needed when several sessions are timed
    side by side in one process, or their idle threads steal each other's cores. ``profile_prefix``
    turns ONNX Runtime's profiler on (its JSON goes to ``<prefix>_<date>.json``; the caller removes it).
    """
    ort = import_ort()
    problem = provider_problem(provider)
    if problem:
        raise MissingDependencyError(problem)
    wanted = PROVIDER_ALIASES[provider]
    options = _options(ort, threads, spinning, optimization_level, optimized_model_path)
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = str(profile_prefix)
    source = model if isinstance(model, bytes) else str(model)
    quiet = captured_native_output() if provider != "cpu" else contextlib.nullcontext([])
    try:
        with quiet as native:
            session = ort.InferenceSession(source, sess_options=options,
                                           providers=[(wanted, _PROVIDER_OPTIONS.get(provider, {}))])
    except Exception as exc:
        raise UsageError(f"ONNX Runtime could not load the model on {provider}: {str(exc).splitlines()[0]}") from exc
    actual = session.get_providers()[0]
    if actual != wanted:
        why = _first_native_error("".join(native))
        raise MissingDependencyError(
            f"asked for provider {provider!r} ({wanted}) but ONNX Runtime runs on {actual}"
            + (f": {why}" if why else " (no usable GPU or CUDA libraries here)"))
    return session


class SessionFromOnnx:
    """Loader: calling it makes one ``InferenceSession`` (Polygraphy's ``SessionFromOnnx``).

    ``optimized_cache``: a file for ONNX Runtime's optimized graph. The first session saves it; later
    ones load it with graph optimization off, which makes session creation faster. The cache records
    the source model's SHA-256, ONNX Runtime's version, the provider and the optimization level, and
    is rebuilt when any differ (the optimized graph is specific to all of them).
    """

    def __init__(self, model: str | Path | bytes, *, provider: str = "cpu", threads: int | None = None,
                 spinning: bool = True, optimization_level: str = "all",
                 optimized_cache: str | Path | None = None) -> None:
        if provider not in PROVIDER_ALIASES:
            raise UsageError(f"unknown provider {provider!r}; valid: {', '.join(PROVIDER_ALIASES)}")
        self.model = model
        self.provider = provider
        self.optimized_cache = Path(optimized_cache) if optimized_cache else None
        self.session_args = dict(provider=provider, threads=threads, spinning=spinning,
                                 optimization_level=optimization_level)
        self.cache_hit: bool | None = None

    def __call__(self):
        if self.optimized_cache is None:
            return create_session(self.model, **self.session_args)
        return self._cached()

    def _cache_key(self) -> dict[str, str]:
        data = self.model if isinstance(self.model, bytes) else Path(self.model).read_bytes()
        return {"source_sha256": hashlib.sha256(data).hexdigest(), "onnxruntime": import_ort().__version__,
                "provider": self.provider, "optimization_level": str(self.session_args["optimization_level"])}

    def _cached(self):
        from ...artifacts import atomic_write_text

        cache = self.optimized_cache
        assert cache is not None
        stamp = cache.with_name(cache.name + ".json")
        key = self._cache_key()
        try:
            hit = cache.is_file() and json.loads(stamp.read_text()) == key
        except (OSError, ValueError):
            hit = False
        self.cache_hit = hit
        if hit:
            return create_session(cache, **{**self.session_args, "optimization_level": "disable"})
        # ORT writes the optimized model itself: write it beside the target, rename when complete.
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial = cache.with_name(f".{cache.name}.partial")
        session = create_session(self.model, **self.session_args, optimized_model_path=partial)
        partial.replace(cache)
        atomic_write_text(stamp, json.dumps(key) + "\n")
        return session
