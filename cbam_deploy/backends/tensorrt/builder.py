"""Build a TensorRT plan from an ONNX model: strongly typed network (precision comes from the ONNX),
one optimization profile, workspace limit, timing cache loaded and saved. Thin on purpose: this
is the part that cannot run without a GPU, and it is exercised by ``pytest -m gpu``."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from ...artifacts import atomic_write_bytes
from ...errors import CheckFailedError
from .environment import import_tensorrt
from .profiles import Profile


@dataclass
class BuildResult:
    plan: bytes
    seconds: float
    timing_cache_saved: bool


def build_plan(onnx_path: str | Path, profile: Profile, *, workspace_bytes: int | None = None,
               timing_cache: str | Path | None = None, verbose: bool = False) -> BuildResult:
    """Parse and build; parser errors are reported verbatim, a failed build raises ``CheckFailedError``."""
    trt = import_tensorrt()
    logger = trt.Logger(trt.Logger.VERBOSE if verbose else trt.Logger.WARNING)
    builder = trt.Builder(logger)
    # TensorRT 10 builds strongly typed networks when asked; TensorRT 11 always does and ignores the flag.
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise CheckFailedError(f"TensorRT's ONNX parser rejected {onnx_path}: {errors}")
    config = builder.create_builder_config()
    if workspace_bytes:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_bytes))
    trt_profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in profile.shapes.items():
        trt_profile.set_shape(name, lo, opt, hi)
    config.add_optimization_profile(trt_profile)
    cache_path = Path(timing_cache) if timing_cache else None
    if cache_path is not None:
        cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.is_file() else b"")
        config.set_timing_cache(cache, ignore_mismatch=False)
    start = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    seconds = time.perf_counter() - start
    if serialized is None:
        raise CheckFailedError(f"TensorRT could not build an engine from {onnx_path} (see the log above)")
    saved = False
    if cache_path is not None:
        atomic_write_bytes(cache_path, bytes(config.get_timing_cache().serialize()))
        saved = True
    return BuildResult(bytes(serialized), seconds, saved)
