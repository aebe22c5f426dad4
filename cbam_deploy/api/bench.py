"""``benchmark``: ONNX Runtime (per precision) and eager PyTorch timed side by side, interleaved."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..bench import Timing, time_interleaved
from ..errors import UsageError
from ..model_dir import ExportedModel
from .validate import int8_flavor_for, precision_models


def _check_numbers(batch_sizes: Sequence[int], threads: int, warmup: int, runs: int, seconds: float | None) -> None:
    if not batch_sizes or any(b <= 0 for b in batch_sizes):
        raise UsageError(f"batch sizes must be positive, got {list(batch_sizes)}")
    if runs <= 0 or threads <= 0:
        raise UsageError(f"runs and threads must be positive, got runs={runs}, threads={threads}")
    if warmup < 0:
        raise UsageError(f"warmup must not be negative, got {warmup}")
    if seconds is not None and not seconds > 0:
        raise UsageError(f"seconds must be positive, got {seconds}")


def _feed(exported: ExportedModel, batch: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {s.name: rng.standard_normal((batch if 0 in d else shape[0], *shape[1:])).astype(np.float32)
            for s, shape, d in zip(exported.input_specs(), exported.traced_shapes, exported.input_dynamic_axes())}


def benchmark(model: str | Path | ExportedModel, *, eager: Any = True, precisions: Sequence[str] = ("fp32",),
              provider: str = "cpu", batch_sizes: Sequence[int] = (1, 8), threads: int = 2, warmup: int = 10,
              runs: int = 50, seconds: float | None = None, calibration: np.ndarray | None = None,
              bare: bool = False, optimization_level: str = "all", trust_model_code: bool = False,
              on_batch: Callable[[int, int], None] | None = None) -> list[Timing]:
    """Time ONNX Runtime (per precision) and, unless ``eager=False``, eager PyTorch side by side.

    ``eager``: True rebuilds the eager model from the export's metadata (a user's factory only with
    ``trust_model_code=True``); a module is used as given. Configurations are interleaved round-robin
    in one process (``bench.time_interleaved``), ONNX Runtime's intra-op spinning off.
    """
    from ..backends import open_runner
    from ..backends.onnxruntime import create_session

    _check_numbers(batch_sizes, threads, warmup, runs, seconds)
    exported = model if isinstance(model, ExportedModel) else ExportedModel.open(model, trust_model_code=trust_model_code)
    if not any(0 in d for d in exported.input_dynamic_axes()):
        batch_sizes = [exported.traced_shape[0]]
    flavor = int8_flavor_for(exported, f"onnxruntime-{provider}") if exported.metadata.get("precision") != "int8" \
        else exported.metadata.get("int8_flavor", "s8s8")  # INT8 timed in the flavor this provider runs
    models = precision_models(exported, precisions, calibration, "array" if calibration is not None else "", flavor)
    for p, m in models.items():
        if isinstance(m, str):
            raise UsageError(f"cannot benchmark {p}: {m}")
    import torch

    torch.set_num_threads(threads)
    timings: list[Timing] = []
    with ExitStack() as stack:
        runners: dict[str, Any] = {}
        if eager is not False:
            runners["eager fp32"] = stack.enter_context(
                open_runner("torch", exported, **({} if eager is True else {"module": eager})))
        for p in precisions:
            runners[f"onnxruntime {p}" + (f" ({flavor})" if p == "int8" else "")] = stack.enter_context(open_runner(
                f"onnxruntime-{provider}", models[p], threads=threads, spinning=False,
                optimization_level=optimization_level))
        session = create_session(models[precisions[0]], provider=provider, threads=threads, spinning=False) if bare else None
        for batch in batch_sizes:
            feed32 = _feed(exported, batch)
            calls = {label: (lambda r=runner, n=label, f={s.name: feed32[s.name].astype(s.dtype)
                                                            for s in runner.input_specs()}: _finite(n, r.infer(f)))
                     for label, runner in runners.items()}
            if session is not None:
                calls[f"bare session.run {precisions[0]}"] = lambda: session.run(None, feed32)
            if on_batch:
                on_batch(batch, len(calls))
            timings.extend(time_interleaved(calls, batch=batch, warmup=warmup, runs=runs, seconds=seconds).values())
    return timings


def _finite(label: str, outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A benchmark of a model that answers NaN measures nothing: refuse it (checked on every call is cheap)."""
    for name, value in outputs.items():
        if np.issubdtype(value.dtype, np.floating) and not np.isfinite(value).all():
            from ..errors import CheckFailedError

            raise CheckFailedError(f"{label}: output {name!r} has NaN or Inf values; the model is broken "
                                   "(corrupted weights?) and its timings would mean nothing")
    return outputs
