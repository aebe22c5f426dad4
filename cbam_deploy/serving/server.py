"""``cbam-serve``'s engine: a real Triton Inference Server (PyTriton's bundled ``tritonserver``) with
a cbam-deploy runner behind it, dynamic batching on by default.

PyTriton starts ``tritonserver`` and a Python stub as child processes; requests reach
``infer`` below in batches the dynamic batcher assembled. A request the runner rejects (wrong
shape, NaN) gets an error response; the server keeps serving.
"""

from __future__ import annotations

import logging
import os
import signal
import sysconfig
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import MissingDependencyError, UsageError
from ..model_dir import ExportedModel
from .triton_config import DEFAULT_MAX_BATCH, preferred_batch_sizes

BACKENDS = ("onnxruntime-cpu", "onnxruntime-cuda", "onnxruntime-tensorrt", "tensorrt")


def interpreter_library_path() -> None:
    """Put the running interpreter's lib folder first on LD_LIBRARY_PATH (inherited by Triton's
    Python stub). Why: without it the stub can load the system's libpython instead of ours and
    fails with "'_thread.RLock' object has no attribute '_recursion_count'"."""
    libdir = sysconfig.get_config_var("LIBDIR")
    if not libdir:
        return
    current = [p for p in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p]
    if not current or current[0] != libdir:
        os.environ["LD_LIBRARY_PATH"] = os.pathsep.join([libdir, *[p for p in current if p != libdir]])


@dataclass
class ServeOptions:
    backend: str = "onnxruntime-cpu"
    host: str = "127.0.0.1"
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    max_batch_size: int = DEFAULT_MAX_BATCH
    dynamic_batching: bool = True
    max_queue_delay_us: int = 500
    threads: int | None = None
    instances: int = 1
    log_verbose: int = 0
    optimized_cache: str | None = None


def _open(model_dir: str | Path, options: ServeOptions):
    """(model name, ExportedModel for the I/O signature, runner)."""
    if options.backend not in BACKENDS:
        raise UsageError(f"unknown backend {options.backend!r}; valid: {', '.join(BACKENDS)}")
    if options.backend == "tensorrt":  # a cbam-build folder: NAME_trt/1/model.plan (+ sidecar naming its ONNX)
        from ..backends.tensorrt import read_sidecar
        from ..backends.tensorrt.runner import TensorRTRunner

        plan = Path(model_dir) / "1" / "model.plan"
        if not plan.is_file():
            raise UsageError(f"--backend tensorrt serves a cbam-build folder: no {plan}")
        source = read_sidecar(plan).extra.get("source_onnx")
        return Path(model_dir).name, ExportedModel.open(source), TensorRTRunner(plan)
    from ..backends.onnxruntime import OnnxRuntimeRunner

    model = ExportedModel.open(model_dir)
    runner = OnnxRuntimeRunner(model.onnx_path, provider=options.backend.split("-", 1)[1], threads=options.threads,
                               spinning=False, optimized_cache=options.optimized_cache)
    return model.name, model, runner


def _pytriton():
    interpreter_library_path()
    try:
        from pytriton.decorators import batch
        from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
        from pytriton.triton import Triton, TritonConfig
    except ImportError:
        raise MissingDependencyError("cbam-serve needs PyTriton (it carries the tritonserver binary): "
                                     "pip install 'cbam-deploy[serve]' (Linux, glibc 2.35 or newer)") from None
    return batch, DynamicBatcher, ModelConfig, Tensor, Triton, TritonConfig


def serve(model_dir: str | Path, options: ServeOptions, *, on_ready: Callable[[str], None] | None = None,
          stop_event: threading.Event | None = None) -> None:
    """Serve ``model_dir`` until Ctrl-C, SIGTERM or ``stop_event``; Triton and its stub are stopped
    before returning."""
    batch, DynamicBatcher, ModelConfig, Tensor, Triton, TritonConfig = _pytriton()
    name, model, runner = _open(model_dir, options)
    runner.__enter__()  # a missing provider or a bad plan fails here, before any port is opened
    specs = runner.input_specs()
    batched = all(s.shape and not isinstance(s.shape[0], int) for s in specs) and options.max_batch_size > 0

    def dims(shape) -> tuple[int, ...]:
        body = shape[1:] if batched else shape
        return tuple(d if isinstance(d, int) and d > 0 else -1 for d in body)

    outputs = {o["name"]: o for o in model.signature["outputs"]}
    inputs = [Tensor(name=s.name, dtype=s.dtype.type, shape=dims(s.shape)) for s in specs]
    out_tensors = [Tensor(name=name, dtype=np.dtype(str(outputs[name]["dtype"])).type, shape=dims(outputs[name]["shape"]))
                   for name in runner.output_names()]

    def infer_batch(**feed: np.ndarray) -> dict[str, np.ndarray]:
        return runner.infer(feed)

    def infer_requests(requests) -> list[dict[str, np.ndarray]]:  # a static batch axis: one request at a time
        return [runner.infer(dict(r.data)) for r in requests]

    infer = batch(infer_batch) if batched else infer_requests
    batcher = (DynamicBatcher(max_queue_delay_microseconds=options.max_queue_delay_us,
                              preferred_batch_size=preferred_batch_sizes(options.max_batch_size))
               if batched and options.dynamic_batching else None)
    config = ModelConfig(batching=batched, max_batch_size=options.max_batch_size if batched else 0, batcher=batcher)
    triton_config = TritonConfig(http_address=options.host, http_port=options.http_port, grpc_address=options.host,
                                 grpc_port=options.grpc_port, metrics_address=options.host,
                                 metrics_port=options.metrics_port, log_verbose=options.log_verbose)
    logging.getLogger("pytriton").setLevel(logging.WARNING)
    stop_event = stop_event or threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop_event.set()) if threading.current_thread() is threading.main_thread() else None
    try:
        with Triton(config=triton_config) as triton:
            triton.bind(model_name=name, infer_func=[infer] * options.instances, inputs=inputs,
                        outputs=out_tensors, config=config, strict=True)
            triton.run()
            if on_ready:
                on_ready(name)
            try:
                while not stop_event.wait(0.5):
                    if not triton.is_alive():
                        raise UsageError("Triton Inference Server stopped unexpectedly (see its log above)")
            except KeyboardInterrupt:
                pass
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        runner.__exit__(None, None, None)
