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
              on_batch: Callable[[int, int], None] | None = None,
              backends: Sequence[str] | None = None) -> list[Timing]:
    """Time ONNX Runtime (per precision) and, unless ``eager=False``, eager PyTorch side by side.

    ``backends``: names from the backend table (``onnxruntime-cpu``, ``openvino``...), labelled
    "<backend> <precision>"; None times ONNX Runtime on ``provider`` (labelled "onnxruntime <precision>").
    bf16 runs only on backends that compute it natively (``Backend.bf16``). ``eager``: True rebuilds the eager model from the export's metadata (a user's factory only with
    ``trust_model_code=True``); a module is used as given. Configurations are interleaved round-robin
    in one process (``bench.time_interleaved``), ONNX Runtime's intra-op spinning off.
    """
    from ..backends import open_runner
    from ..backends.onnxruntime import create_session

    _check_numbers(batch_sizes, threads, warmup, runs, seconds)
    exported = model if isinstance(model, ExportedModel) else ExportedModel.open(model, trust_model_code=trust_model_code)
    if not any(0 in d for d in exported.input_dynamic_axes()):
        batch_sizes = [exported.traced_shape[0]]
    plan = _configurations(backends, provider, precisions)
    models = precision_models(exported, [p for p in precisions if p != "int8"], calibration,
                              "array" if calibration is not None else "")
    flavors: dict[str, str] = {}  # backend -> the INT8 flavor it runs (an INT8 export keeps its own)
    for _, backend, p in plan:
        if p != "int8" or backend in flavors:
            continue
        flavors[backend] = (exported.metadata.get("int8_flavor", "s8s8") if exported.metadata.get("precision") == "int8"
                            else int8_flavor_for(exported, backend))
        same = next((b for b, f in flavors.items() if f == flavors[backend] and f"int8 {b}" in models), None)
        models[f"int8 {backend}"] = models[f"int8 {same}"] if same else precision_models(
            exported, ["int8"], calibration, "array" if calibration is not None else "", flavors[backend])["int8"]
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
        for label, backend, p in plan:
            options: dict[str, Any] = ({"threads": threads, "precision": "bf16" if p == "bf16" else "fp32"}
                                       if backend == "openvino" else
                                       {"threads": threads, "spinning": False, "optimization_level": optimization_level})
            label += f" ({flavors[backend]})" if p == "int8" else ""
            runners[label] = stack.enter_context(open_runner(backend, models[f"int8 {backend}" if p == "int8" else p],
                                                             **options))
        first = models[precisions[0]] if precisions[0] != "int8" else models[f"int8 {plan[0][1]}"]
        session = create_session(first, provider=provider, threads=threads, spinning=False) if bare else None
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


def _configurations(backends: Sequence[str] | None, provider: str,
                    precisions: Sequence[str]) -> list[tuple[str, str, str]]:
    """(label, backend, precision) to time; one line naming what cannot be timed."""
    from ..backends import BACKENDS, backend_problem, get_backend

    if backends is None:
        plan = [(f"onnxruntime {p}", f"onnxruntime-{provider}", p) for p in precisions]
    else:
        for b in backends:
            if get_backend(b).runs != "onnx":
                raise UsageError(f"cbam-bench times backends that run the ONNX file; {b!r} does not "
                                 f"(valid: {', '.join(n for n, e in BACKENDS.items() if e.runs == 'onnx')})")
        plan = [(f"{b} {p}", b, p) for b in backends for p in precisions]
    for _, b, p in plan:
        if p == "bf16" and not get_backend(b).bf16:
            raise UsageError(f"cannot benchmark bf16 on {b}: it has no native bf16 (bf16 runs on: "
                             f"{', '.join(n for n, e in BACKENDS.items() if e.bf16)})")
    for b in dict.fromkeys(b for _, b, _ in plan):
        problem = backend_problem(b)
        if problem:
            from ..errors import MissingDependencyError

            raise MissingDependencyError(f"backend {b} cannot run here: {problem}")
    return plan


def _finite(label: str, outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A benchmark of a model that answers NaN measures nothing: refuse it (checked on every call is cheap)."""
    for name, value in outputs.items():
        if np.issubdtype(value.dtype, np.floating) and not np.isfinite(value).all():
            from ..errors import CheckFailedError

            raise CheckFailedError(f"{label}: output {name!r} has NaN or Inf values; the model is broken "
                                   "(corrupted weights?) and its timings would mean nothing")
    return outputs


def profile(model: str | Path | ExportedModel, *, backend: str = "onnxruntime-cpu", precision: str = "fp32",
            batch: int = 1, threads: int = 2, warmup: int = 5, runs: int = 30, ablation: str | None = None,
            calibration: np.ndarray | None = None, optimization_level: str = "all", trust_model_code: bool = False,
            also_time: dict[str, str | bytes] | None = None):
    """Where the latency goes: ``backend``'s profile of the export (at ``precision``, FP16/INT8 derived
    from the FP32 export as ``benchmark`` does), each executed node attributed to a PyTorch module and
    each attention block split into channel attention, spatial attention and gating.

    Returns a :class:`cbam_deploy.profiling.ProfileReport` (``attention_share``, ``attributed_share``,
    ``modules``, ``blocks``, ``to_dict()``, ``to_markdown()``). ``ablation``: ``"network"`` also times
    the export with its attention bypassed, ``"stages"`` also per stage, in the same rounds;
    ``also_time``: other models with the same inputs (label -> path or bytes) timed in those rounds.
    """
    from ..profiling import profile_model

    _check_numbers([batch], threads, warmup, runs, None)
    exported = model if isinstance(model, ExportedModel) else ExportedModel.open(model, trust_model_code=trust_model_code)
    if not any(0 in d for d in exported.input_dynamic_axes()) and batch != exported.traced_shape[0]:
        raise UsageError(f"{exported.name} has a fixed batch size {exported.traced_shape[0]}; cannot profile batch {batch}")
    feed32 = _feed(exported, batch)
    if precision == exported.metadata.get("precision", "fp32"):
        source: Any = exported.onnx_path  # the file itself: no copy of a 100 MB proto
        specs = exported.input_specs()
    else:
        models = precision_models(exported, [precision], calibration, "array" if calibration is not None else "")
        if isinstance(models[precision], str):
            raise UsageError(f"cannot profile {precision}: {models[precision]}")
        source = models[precision]
        specs = _input_specs(source)
    feed = {s.name: feed32[s.name].astype(s.dtype) for s in specs}
    return profile_model(source, feed, backend=backend, threads=threads, warmup=warmup, runs=runs,
                         name=f"{exported.name} {precision} batch {batch}", ablation=ablation,
                         optimization_level=optimization_level, also_time=also_time)


def _input_specs(model: bytes):
    """The graph inputs' names and numpy dtypes (an FP16 export without kept I/O types takes float16)."""
    import onnx
    from onnx.helper import tensor_dtype_to_np_dtype

    from ..backends.base import TensorSpec

    proto = onnx.load_from_string(model)
    inits = {t.name for t in proto.graph.initializer}
    return [TensorSpec(i.name, np.dtype(tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type)), ())
            for i in proto.graph.input if i.name not in inits]
