"""A load generator for a Triton-served model: concurrent tritonclient clients (HTTP or gRPC), mixed
batch sizes, every answer checked against expected outputs; and a ``cbam-serve`` process manager
for tests and benchmarks (start on free loopback ports, wait until ready, stop, and prove no child
process is left behind)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from ..errors import CheckFailedError

_TRITON_DTYPES = {np.dtype(np.float32): "FP32", np.dtype(np.float16): "FP16", np.dtype(np.float64): "FP64",
                  np.dtype(np.int64): "INT64", np.dtype(np.int32): "INT32"}


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _client(protocol: str, url: str):
    if protocol == "http":
        import tritonclient.http as client
    else:
        import tritonclient.grpc as client
    return client


def infer_once(protocol: str, url: str, model: str, feed: Mapping[str, np.ndarray], outputs: Sequence[str],
               connection=None) -> dict[str, np.ndarray]:
    """One request; raises tritonclient's InferenceServerException on an error response."""
    client = _client(protocol, url)
    conn = connection or client.InferenceServerClient(url=url)
    inputs = []
    for name, array in feed.items():
        item = client.InferInput(name, list(array.shape), _TRITON_DTYPES[array.dtype])
        item.set_data_from_numpy(array)
        inputs.append(item)
    result = conn.infer(model, inputs, outputs=[client.InferRequestedOutput(o) for o in outputs])
    return {o: result.as_numpy(o) for o in outputs}


@dataclass
class LoadResult:
    protocol: str
    clients: int
    requests: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    images: int = 0
    errors: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        """Images per second over the whole run."""
        return self.images / self.seconds

    def percentile_ms(self, q: float) -> float:
        return 1000 * float(np.percentile(self.latencies, q)) if self.latencies else float("nan")

    def to_dict(self) -> dict[str, object]:
        return {"protocol": self.protocol, "clients": self.clients, "requests": self.requests,
                "seconds": round(self.seconds, 3), "images_per_s": round(self.throughput, 1),
                "requests_per_s": round(self.requests / self.seconds, 1), "p50_ms": round(self.percentile_ms(50), 2),
                "p99_ms": round(self.percentile_ms(99), 2), "errors": len(self.errors), "mismatches": len(self.mismatches)}


def run_load(url: str, model: str, *, pool: Mapping[str, np.ndarray], expected: Mapping[str, np.ndarray],
             check: Callable[[np.ndarray, np.ndarray], str | None], clients: int = 8, requests_per_client: int = 100,
             batch_sizes: Sequence[int] = (1, 2, 4), protocol: str = "http", seed: int = 0) -> LoadResult:
    """``clients`` threads each send ``requests_per_client`` requests of rows drawn from ``pool``
    (batch sizes cycling through ``batch_sizes``); each answer is compared with the same rows of
    ``expected`` by ``check`` (returns a failure message or None)."""
    client = _client(protocol, url)
    outputs = list(expected)
    rows = len(next(iter(pool.values())))
    result = LoadResult(protocol, clients, clients * requests_per_client, 0.0)
    lock = threading.Lock()
    start_gate = threading.Barrier(clients + 1)

    def worker(index: int) -> None:
        rng = np.random.default_rng(seed + index)
        conn = client.InferenceServerClient(url=url)
        start_gate.wait()
        for k in range(requests_per_client):
            n = batch_sizes[(index + k) % len(batch_sizes)]
            pick = rng.integers(0, rows, size=n)
            feed = {name: np.ascontiguousarray(array[pick]) for name, array in pool.items()}
            t0 = time.perf_counter()
            try:
                got = infer_once(protocol, url, model, feed, outputs, connection=conn)
            except Exception as exc:  # an error response is a failed request, counted and reported
                with lock:
                    result.errors.append(f"client {index} request {k}: {str(exc).splitlines()[0]}")
                continue
            elapsed = time.perf_counter() - t0
            problems = [f"{o}: {msg}" for o in outputs if (msg := check(got[o], expected[o][pick])) is not None]
            with lock:
                result.latencies.append(elapsed)
                result.images += n
                if problems:
                    result.mismatches.append(f"client {index} request {k}: {'; '.join(problems)}")
        conn.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    start_gate.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    result.seconds = time.perf_counter() - t0
    return result


def _descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (from /proc; Linux)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class ServeProcess:
    """``cbam-serve`` in a subprocess on free loopback ports; ``stop()`` sends SIGINT (Ctrl-C)."""

    def __init__(self, model_dir: str | Path, *args: str, log: str | Path | None = None) -> None:
        self.http_port, self.grpc_port, self.metrics_port = free_ports(3)
        self.model_dir = Path(model_dir)
        self.args = list(args)
        self.log_path = Path(log) if log else None
        self.process: subprocess.Popen | None = None
        self.children: set[int] = set()

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def start(self, timeout: float = 180.0) -> "ServeProcess":
        import tritonclient.http as http

        command = [sys.executable, "-m", "cbam_deploy.cli.serve", str(self.model_dir), "--http-port",
                   str(self.http_port), "--grpc-port", str(self.grpc_port), "--metrics-port", str(self.metrics_port),
                   *self.args]
        out = open(self.log_path, "w") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ))
        client = http.InferenceServerClient(url=self.http_url)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise CheckFailedError(f"cbam-serve exited with {self.process.returncode} before it was ready"
                                       + (f" (log: {self.log_path})" if self.log_path else ""))
            try:
                if client.is_server_ready() and client.is_model_ready(self.model_dir.name):
                    self.children = _descendants(self.process.pid)
                    return self
            except Exception:  # not listening yet
                pass
            time.sleep(0.5)
        self.stop()
        raise CheckFailedError(f"cbam-serve was not ready within {timeout:.0f}s")

    def stop(self, timeout: float = 60.0) -> int:
        """Ctrl-C, wait for a clean exit; returns the exit code (kills and raises if it hangs)."""
        assert self.process is not None
        self.children |= _descendants(self.process.pid)
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                for pid in self.children:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
                raise CheckFailedError(f"cbam-serve did not stop within {timeout:.0f}s of SIGINT") from None
        return self.process.returncode

    def leftover_children(self, grace: float = 10.0) -> list[int]:
        """Child processes (tritonserver, the Python stub) still alive after stop()."""
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            left = sorted(pid for pid in self.children if _alive(pid))
            if not left:
                return []
            time.sleep(0.2)
        return left

    def __enter__(self) -> "ServeProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        if self.process is not None and self.process.poll() is None:
            self.stop()
