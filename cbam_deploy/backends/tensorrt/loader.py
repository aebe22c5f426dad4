"""TensorRT loaders, on Polygraphy's NVIDIA-tested ones (``polygraphy.backend.trt``):

    NetworkFromOnnxPath(path, strongly_typed=True)        the network; precision comes from the ONNX
    CreateConfig(profiles=[...], memory_pool_limits=...,  one optimization profile, workspace limit,
                 load_timing_cache=...)                    timing cache loaded
    EngineBytesFromNetwork(network, config,               the plan; the timing cache saved
                           save_timing_cache=...)
    EngineFromBytes(plan)                                  the engine, for ``TrtRunner``

What Polygraphy lacks stays ours: the profile from the ONNX's dynamic axes (``profiles.py``), the
sidecar and the refusal of a plan from another TensorRT or GPU (``sidecar.py``). Strongly typed
networks build on TensorRT 10 and are the only kind on TensorRT 11, so one path serves both.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from ...errors import CheckFailedError
from .environment import import_polygraphy_trt, import_tensorrt
from .profiles import Profile


@dataclass
class BuildResult:
    plan: bytes
    seconds: float
    timing_cache_saved: bool


def _polygraphy_errors():
    from polygraphy.exception import PolygraphyException

    return PolygraphyException


def polygraphy_profile(profile: Profile):
    """Our ``Profile`` (min/opt/max per input) as Polygraphy's ``Profile``."""
    ptrt = import_polygraphy_trt()
    result = ptrt.Profile()
    for name, (lo, opt, hi) in profile.shapes.items():
        result.add(name, min=tuple(lo), opt=tuple(opt), max=tuple(hi))
    return result


def build_plan(onnx_path: str | Path, profile: Profile, *, workspace_bytes: int | None = None,
               timing_cache: str | Path | None = None, verbose: bool = False) -> BuildResult:
    """Parse and build a strongly typed engine; a rejected model or failed build raises ``CheckFailedError``.

    The timing cache, when given, is loaded if it exists and saved (merged) after the build, written
    beside the target and renamed, so an interrupted build never leaves half a cache.
    """
    ptrt = import_polygraphy_trt()
    trt = import_tensorrt()
    from polygraphy.logger import G_LOGGER

    cache = Path(timing_cache) if timing_cache else None
    partial = cache.with_name(f".{cache.name}.partial") if cache else None
    network = ptrt.NetworkFromOnnxPath(str(onnx_path), strongly_typed=True)
    config = ptrt.CreateConfig(
        profiles=[polygraphy_profile(profile)],
        memory_pool_limits={trt.MemoryPoolType.WORKSPACE: int(workspace_bytes)} if workspace_bytes else None,
        load_timing_cache=str(cache) if cache is not None and cache.is_file() else None)
    build = ptrt.EngineBytesFromNetwork(network, config=config,
                                        save_timing_cache=str(partial) if partial is not None else None)
    start = time.perf_counter()
    try:
        with G_LOGGER.verbosity(G_LOGGER.VERBOSE if verbose else G_LOGGER.WARNING):
            serialized = build()
    except _polygraphy_errors() as exc:
        raise CheckFailedError(f"TensorRT could not build an engine from {onnx_path}: "
                               f"{str(exc).strip().splitlines()[-1]} (TensorRT's messages are above)") from None
    finally:
        seconds = time.perf_counter() - start
    saved = False
    if partial is not None and partial.is_file():
        os.replace(partial, cache)
        saved = True
    return BuildResult(bytes(serialized), seconds, saved)


def engine_from_plan(plan: bytes):
    """A Polygraphy ``EngineFromBytes`` loader for ``plan`` (deserialized when the runner activates)."""
    ptrt = import_polygraphy_trt()
    return ptrt.EngineFromBytes(plan)
