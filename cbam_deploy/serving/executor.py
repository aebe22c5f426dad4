"""What runs inside Triton for ``cbam-serve``: the requests of one dynamic batch are checked one by
one, the good ones run together through a cbam-deploy runner, and every request gets its own
answer: outputs, a rejection (its own fault: HTTP 400 / gRPC INVALID_ARGUMENT) or a model failure
(not its fault: HTTP 500). A bad request never fails, delays or changes the good ones beside it.

No Triton import here (``serving.triton_model`` adapts this to Triton's Python backend), so the
batching logic is tested without a server.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..errors import UsageError
from .options import SERVE_BACKENDS
from .requests import InputSpec, check_request, request_batch


@dataclass(frozen=True)
class Rejected:
    """The request itself is malformed (answered 400 / INVALID_ARGUMENT)."""

    message: str


@dataclass(frozen=True)
class Failed:
    """The model failed on a well-formed request (answered 500)."""

    message: str


Answer = dict[str, np.ndarray] | Rejected | Failed


def one_line(exc: BaseException) -> str:
    """``Type: first line`` of an exception: never a traceback, never several lines."""
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class BatchExecutor:
    """Answers the requests of one Triton batch individually (see the module docstring).

    ``runner`` is an active cbam-deploy ``Runner``; ``specs`` its inputs with full shapes;
    ``max_batch_size`` 0 means a static batch axis (each request runs alone).
    """

    def __init__(self, runner: Any, specs: Sequence[InputSpec], *, max_batch_size: int,
                 log: Callable[[str], None] = lambda line: None) -> None:
        self.runner = runner
        self.specs = list(specs)
        self.max_batch_size = max_batch_size
        self.log = log

    def execute(self, feeds: Sequence[Mapping[str, np.ndarray]]) -> list[Answer]:
        """One answer per feed, in order."""
        answers: list[Answer | None] = [None] * len(feeds)
        groups: dict[object, list[int]] = {}
        for index, feed in enumerate(feeds):
            problem = check_request(feed, self.specs, max_batch_size=self.max_batch_size)
            if problem is not None:
                answers[index] = Rejected(problem)
                self.log(f"rejected a request: {problem}")
                continue
            # Only requests of one shape can share a run (dynamic H/W: different sizes run apart).
            key = tuple(feed[s.name].shape[1:] for s in self.specs) if self.max_batch_size else index
            groups.setdefault(key, []).append(index)
        for members in groups.values():
            for index, answer in zip(members, self._run_together([feeds[i] for i in members])):
                answers[index] = answer
        return [a for a in answers if a is not None]

    def _run_together(self, feeds: Sequence[Mapping[str, np.ndarray]]) -> list[Answer]:
        if self.max_batch_size and len(feeds) > 1:
            joined = {s.name: np.concatenate([f[s.name] for f in feeds]) for s in self.specs}
        else:
            joined = {s.name: feeds[0][s.name] for s in self.specs}
        try:
            outputs = self.runner.infer(joined)
        except Exception as exc:  # the model's failure, not a request's: a 500 for this run only
            message = f"the model failed: {one_line(exc)}"
            self.log(f"{message} (a run of {len(feeds)} request{'s' if len(feeds) != 1 else ''})")
            return [Failed(message)] * len(feeds)
        if len(feeds) == 1:
            return [dict(outputs)]
        answers: list[Answer] = []
        start = 0
        for feed in feeds:
            rows = request_batch(feed, self.specs)
            answers.append({name: np.ascontiguousarray(array[start:start + rows]) for name, array in outputs.items()})
            start += rows
        return answers

    def close(self) -> None:
        self.runner.__exit__(None, None, None)


def specs_from_signature(signature: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[InputSpec]:
    """``InputSpec`` per input of an ``io_signature`` (str dims are dynamic)."""
    return [InputSpec(str(i["name"]), np.dtype(str(i["dtype"])),
                      tuple(d if isinstance(d, int) and d > 0 else None for d in i["shape"]))
            for i in signature["inputs"]]


def open_model(model_dir: str | Path, backend: str):
    """(name, ExportedModel giving the I/O signature, model file) for a served folder.

    ``tensorrt`` serves a cbam-build folder (NAME_trt/1/model.plan, its sidecar naming the ONNX);
    the ONNX Runtime backends serve an exported folder (models/NAME) or an .onnx file.
    """
    from ..model_dir import ExportedModel

    if backend not in SERVE_BACKENDS:
        raise UsageError(f"unknown backend {backend!r}; valid: {', '.join(SERVE_BACKENDS)}")
    if backend == "tensorrt":
        from ..backends.tensorrt import read_sidecar

        plan = Path(model_dir) / "1" / "model.plan"
        if not plan.is_file():
            raise UsageError(f"--backend tensorrt serves a cbam-build folder: no {plan}")
        source = read_sidecar(plan).extra.get("source_onnx")
        if not source:
            raise UsageError(f"{plan}'s sidecar does not name the ONNX it was built from")
        return Path(model_dir).name, ExportedModel.open(source), plan
    model = ExportedModel.open(model_dir)
    return model.name, model, model.onnx_path


def open_runner(path: str | Path, backend: str, *, threads: int | None = None, optimized_cache: str | None = None):
    """An inactive runner for a model file (``backends.open_runner``). Non-finite inputs are let
    through: requests were checked one by one before (``check_request``)."""
    from ..backends import open_runner as open_backend_runner

    if backend == "tensorrt":
        return open_backend_runner(backend, path, allow_nonfinite=True)
    if backend == "openvino":  # f32 (the hint set explicitly), compiled model cached per user
        # One dynamic compile: a static one per new batch size would be compiled inside a request.
        return open_backend_runner(backend, path, threads=threads, allow_nonfinite=True, static_shapes=0)
    return open_backend_runner(backend, path, threads=threads, spinning=False, optimized_cache=optimized_cache,
                               allow_nonfinite=True)


def open_executor(parameters: Mapping[str, str], *, max_batch_size: int,
                  log: Callable[[str], None] = lambda line: None) -> BatchExecutor:
    """The executor for the model config's ``cbam_deploy.serve.*`` parameters (written by
    ``serving.server``); the runner is active when this returns."""
    backend = parameters["cbam_deploy.serve.backend"]
    _, model, path = open_model(parameters["cbam_deploy.serve.model"], backend)
    threads = int(parameters.get("cbam_deploy.serve.threads") or 0) or None
    runner = open_runner(path, backend, threads=threads,
                         optimized_cache=parameters.get("cbam_deploy.serve.optimized_cache") or None)
    runner.__enter__()
    return BatchExecutor(runner, specs_from_signature(model.signature), max_batch_size=max_batch_size, log=log)
