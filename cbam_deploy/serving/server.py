"""``cbam-serve``'s engine: a real Triton Inference Server (the ``tritonserver`` the nvidia-pytriton
wheel carries) serving an exported model through ``serving.triton_model``, dynamic batching on.

Every request is checked on its own inside the batch Triton assembled; a malformed one gets its
own HTTP 400 / gRPC INVALID_ARGUMENT and the good ones beside it are answered as if it were not
there (``serving.executor``). Requests Triton itself can judge (input names, dtypes, fixed dims,
batch over ``max_batch_size``, an unreadable body) are refused by Triton with a 400 before any
batch is formed.

Stopping (SIGTERM, SIGINT, Ctrl-C, ``stop_event``): Triton's readiness goes false, in-flight
requests finish, Triton and its stub exit, the temporary folder is removed; ``serve`` returns
normally (exit 0). A second signal kills Triton at once and raises ``Interrupted``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import EXIT_SIGINT, EXIT_SIGTERM, EnvironmentProblem, Interrupted, MissingDependencyError, UsageError
from .executor import open_model
from .options import DEFAULT_EXIT_TIMEOUT_S, DEFAULT_QUEUE_DELAY_US, SERVE_BACKENDS
from .triton_config import DEFAULT_MAX_BATCH, build_config, to_text
from .triton_process import (TritonProcess, prepare_backends, triton_distribution, triton_environment,
                             workspace_folder)

BACKENDS = SERVE_BACKENDS
TOKEN_HEADER = "cbam-serve-token"
STOP_GRACE_S = 5  # after the drain, for Triton to exit (it checks every second)
# Triton's own wait on SIGTERM. In-flight requests were already answered by the drain; what Triton
# would still wait for is clients' idle keep-alive connections to close, which may never happen.
TRITON_EXIT_TIMEOUT_S = 1
_SIGNALS = {signal.SIGINT: ("SIGINT", EXIT_SIGINT), signal.SIGTERM: ("SIGTERM", EXIT_SIGTERM)}


@dataclass
class ServeOptions:
    backend: str = "onnxruntime-cpu"
    host: str = "127.0.0.1"
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    max_batch_size: int = DEFAULT_MAX_BATCH
    dynamic_batching: bool = True
    max_queue_delay_us: int = DEFAULT_QUEUE_DELAY_US
    threads: int | None = None
    instances: int = 1
    log_verbose: int = 0
    optimized_cache: str | None = None
    exit_timeout_s: int = DEFAULT_EXIT_TIMEOUT_S  # in-flight requests get this long to finish when told to stop
    startup_timeout_s: float = 600.0


def write_repository(model_dir: str | Path, options: ServeOptions, repository: Path) -> str:
    """``repository/NAME/{config.pbtxt, 1/model.py}``: a Python-backend model running our executor."""
    name, model, _ = open_model(model_dir, options.backend)
    config = build_config(name, model.signature, max_batch_size=options.max_batch_size,
                          instance_count=options.instances, instance_kind="KIND_CPU",
                          max_queue_delay_us=options.max_queue_delay_us, metadata=model.metadata)
    config.ClearField("platform")
    config.ClearField("default_model_filename")
    config.backend = "python"
    if not options.dynamic_batching:
        config.ClearField("dynamic_batching")
    served = {"model": str(Path(model_dir).resolve()), "backend": options.backend,
              "threads": str(options.threads or ""), "optimized_cache": options.optimized_cache or ""}
    for key, value in served.items():
        config.parameters[f"cbam_deploy.serve.{key}"].string_value = value
    version = repository / name / "1"
    version.mkdir(parents=True)
    (repository / name / "config.pbtxt").write_text(to_text(config))
    shutil.copyfile(Path(__file__).with_name("triton_model.py"), version / "model.py")
    return name


def _command(dist: Path, workspace: Path, options: ServeOptions, name: str, shm_prefix: str, token: str) -> list[str]:
    # Explicit model control, so that stopping can unload the model first; the repository API
    # (load/unload) answers only requests carrying our token.
    restricted = f"model-repository:{TOKEN_HEADER}={token}"
    return [str(dist / "bin" / "tritonserver"), f"--model-repository={workspace / 'models'}",
            "--model-control-mode=explicit", f"--load-model={name}", f"--http-restricted-api={restricted}",
            f"--grpc-restricted-protocol={restricted}",
            f"--backend-directory={prepare_backends(dist, workspace)}", "--disable-auto-complete-config",
            f"--http-address={options.host}", f"--http-port={options.http_port}",
            f"--grpc-address={options.host}", f"--grpc-port={options.grpc_port}",
            f"--metrics-address={options.host}", f"--metrics-port={options.metrics_port}",
            f"--backend-config=python,shm-region-prefix-name={shm_prefix}",
            f"--exit-timeout-secs={TRITON_EXIT_TIMEOUT_S}", f"--log-verbose={options.log_verbose}",
            f"--log-info={'true' if options.log_verbose else 'false'}"]


def _base_url(options: ServeOptions) -> str:
    host = "127.0.0.1" if options.host in ("0.0.0.0", "::", "") else options.host
    return f"http://{host}:{options.http_port}"


def _model_ready(options: ServeOptions, name: str) -> bool:
    try:
        with urllib.request.urlopen(f"{_base_url(options)}/v2/models/{name}/ready", timeout=2) as r:
            return r.status == 200
    except (OSError, urllib.error.URLError):
        return False


def _repository(options: ServeOptions, path: str, token: str, body: dict) -> object:
    request = urllib.request.Request(f"{_base_url(options)}/v2/repository/{path}", data=json.dumps(body).encode(),
                                     headers={TOKEN_HEADER: token, "Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as r:
        text = r.read()
    return json.loads(text) if text else None


def _drain(triton: TritonProcess, options: ServeOptions, name: str, token: str) -> None:
    """Unload the model before stopping Triton: from that moment it takes no new request and is not
    ready, and Triton unloads it once its in-flight requests are answered (up to the exit timeout)."""
    deadline = time.monotonic() + options.exit_timeout_s
    try:
        _repository(options, f"models/{name}/unload", token, {})
        while triton.alive() and time.monotonic() < deadline:
            states = {e.get("state") for e in _repository(options, "index", token, {}) if e.get("name") == name}
            if not states & {"READY", "LOADING", "UNLOADING"}:
                return
            time.sleep(0.05)
    except (OSError, ValueError, urllib.error.URLError):
        return  # Triton is gone or going (a second signal): the SIGTERM that follows settles it


class _Signals:
    """SIGINT/SIGTERM while serving: the first asks for an orderly stop, a second kills Triton now."""

    def __init__(self, stop_event: threading.Event) -> None:
        self.stop_event = stop_event
        self.received: list[int] = []
        self.triton: TritonProcess | None = None
        self.previous: dict[int, object] = {}

    def __enter__(self) -> "_Signals":
        if threading.current_thread() is threading.main_thread():
            self.previous = {sig: signal.signal(sig, self._handle) for sig in _SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)

    def _handle(self, signum: int, frame: object) -> None:
        self.received.append(signum)
        self.stop_event.set()
        if len(self.received) > 1 and self.triton is not None:
            self.triton.kill_now()  # the forced exit: no more waiting (reaped by the main flow)

    def forced(self) -> Interrupted | None:
        if len(self.received) < 2:
            return None
        name, code = _SIGNALS[signal.Signals(self.received[-1])]
        return Interrupted(name, code)


def _wait_until_ready(triton: TritonProcess, options: ServeOptions, name: str, stop_event: threading.Event) -> bool:
    """True once the model answers ready; False when told to stop first; raises if Triton dies."""
    deadline = time.monotonic() + options.startup_timeout_s
    while not stop_event.is_set():
        if not triton.alive():
            raise EnvironmentProblem(f"Triton Inference Server did not start: {triton.reason()}")
        if _model_ready(options, name):
            return True
        if time.monotonic() > deadline:
            raise EnvironmentProblem(f"Triton Inference Server was not ready within {options.startup_timeout_s:.0f}s")
        stop_event.wait(0.2)
    return False


def _check_backend(backend: str, workspace: Path) -> None:
    """Before any port opens: a missing provider, library or GPU, in one line (exit 3).

    The probe may import ONNX Runtime, which writes a telemetry file (``.ses``) into $TMPDIR as it
    loads: TMPDIR points into our folder meanwhile, so that file goes with it."""
    from ..backends import backend_problem

    previous = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(workspace / "tmp")
    try:
        problem = backend_problem(backend)
    finally:
        if previous is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = previous
    if problem:
        raise MissingDependencyError(f"--backend {backend} cannot run here: {problem}")


def serve(model_dir: str | Path, options: ServeOptions, *, on_ready: Callable[[str], None] | None = None,
          stop_event: threading.Event | None = None) -> None:
    """Serve ``model_dir`` until SIGINT, SIGTERM or ``stop_event``; returns once Triton, its stub
    and the temporary folder are gone."""
    if options.backend not in BACKENDS:
        raise UsageError(f"unknown backend {options.backend!r}; valid: {', '.join(BACKENDS)}")
    stop_event = stop_event or threading.Event()
    dist = triton_distribution()
    shm_prefix = f"cbam-serve-{os.getpid()}-{os.urandom(3).hex()}-"
    with _Signals(stop_event) as signals, workspace_folder() as workspace:
        _check_backend(options.backend, workspace)
        name = write_repository(model_dir, options, workspace / "models")
        token = os.urandom(16).hex()
        triton = TritonProcess(_command(dist, workspace, options, name, shm_prefix, token),
                               triton_environment(dist, workspace), shm_prefix)
        signals.triton = triton
        try:
            ready = _wait_until_ready(triton, options, name, stop_event)
            if ready and on_ready:
                on_ready(name)
            while not stop_event.wait(0.5):
                if not triton.alive():
                    raise EnvironmentProblem(f"Triton Inference Server stopped unexpectedly: {triton.reason()}")
        finally:
            if triton.alive():
                _drain(triton, options, name, token)
            stopped = triton.stop(grace=STOP_GRACE_S)  # nothing in flight now: Triton exits in a second or two
        forced = signals.forced()
        if forced is not None:
            raise forced
        if not stopped:
            raise EnvironmentProblem(f"Triton Inference Server did not stop within {STOP_GRACE_S}s of SIGTERM "
                                     "and was killed")
