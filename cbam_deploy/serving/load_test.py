"""A load generator for a Triton-served model: concurrent tritonclient clients (HTTP or gRPC), mixed
batch sizes, a share of malformed requests mixed in (NaN, wrong shape, wrong dtype, wrong input
name, batch over the maximum, a garbage body), every good answer checked against expected
outputs, every malformed one expected to be refused with HTTP 400 / gRPC INVALID_ARGUMENT."""

from __future__ import annotations

import collections
import http.client
import threading
import time
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np


MALFORMED_KINDS = ("nan", "wrong_shape", "wrong_dtype", "wrong_name", "batch_over_max", "garbage_body")
_TRITON_DTYPES = {np.dtype(np.float32): "FP32", np.dtype(np.float16): "FP16", np.dtype(np.float64): "FP64",
                  np.dtype(np.int64): "INT64", np.dtype(np.int32): "INT32"}
REFUSED = {"http": "400", "grpc": "StatusCode.INVALID_ARGUMENT"}


def _client(protocol: str):
    if protocol == "http":
        import tritonclient.http as client
    else:
        import tritonclient.grpc as client
    return client


def infer_once(protocol: str, url: str, model: str, feed: Mapping[str, np.ndarray], outputs: Sequence[str],
               connection=None, raw: bytes | None = None) -> dict[str, np.ndarray]:
    """One request; raises tritonclient's InferenceServerException on an error response. ``raw``
    replaces the tensor bytes (a body that does not match the declared shape)."""
    client = _client(protocol)
    conn = connection or client.InferenceServerClient(url=url)
    inputs = []
    for name, array in feed.items():
        item = client.InferInput(name, list(array.shape), _TRITON_DTYPES[array.dtype])
        item.set_data_from_numpy(array)
        if raw is not None:
            item._raw_content = raw  # noqa: SLF001  (no public way to send bytes that contradict the shape)
        inputs.append(item)
    result = conn.infer(model, inputs, outputs=[client.InferRequestedOutput(o) for o in outputs])
    return {o: result.as_numpy(o) for o in outputs}


def malformed_feed(kind: str, good: Mapping[str, np.ndarray], max_batch_size: int) -> dict[str, np.ndarray]:
    """A request that is wrong in one way (``kind``), built from a good one."""
    name, array = next(iter(good.items()))
    if kind == "nan":
        bad = array.copy()
        bad.flat[bad.size // 2] = np.nan
        return {name: bad}
    if kind == "wrong_shape":
        return {name: np.ascontiguousarray(array[..., : max(array.shape[-2] // 2, 1), :])}
    if kind == "wrong_dtype":
        return {name: array.astype(np.float64 if array.dtype != np.float64 else np.float32)}
    if kind == "wrong_name":
        return {f"{name}_x": array}
    if kind == "batch_over_max":
        return {name: np.repeat(array[:1], max_batch_size + 1, axis=0)}
    return dict(good)  # garbage_body: the body is replaced when sent


def _send_garbage_http(url: str, model: str) -> str:
    """POST a body that is not a Triton request; returns the HTTP status."""
    conn = http.client.HTTPConnection(url, timeout=60)
    try:
        conn.request("POST", f"/v2/models/{model}/infer", body=b"\x00garbage{not json",
                     headers={"Content-Type": "application/json"})
        return str(conn.getresponse().status)
    finally:
        conn.close()


@dataclass
class LoadResult:
    protocol: str
    clients: int
    requests: int
    seconds: float = 0.0
    malformed_share: float = 0.0
    latencies: list[float] = field(default_factory=list)  # good requests answered
    images: int = 0  # rows of good requests answered
    errors: list[str] = field(default_factory=list)  # good requests that failed
    mismatches: list[str] = field(default_factory=list)  # good answers beyond the tolerance
    worst_error: float = 0.0
    malformed: int = 0
    accepted: list[str] = field(default_factory=list)  # malformed requests answered as if valid
    statuses: collections.Counter = field(default_factory=collections.Counter)  # malformed: kind/status
    tracebacks: int = 0  # error messages carrying a Python traceback

    @property
    def throughput(self) -> float:
        """Good images per second over the whole run."""
        return self.images / self.seconds if self.seconds else float("nan")

    def percentile_ms(self, q: float) -> float:
        return 1000 * float(np.percentile(self.latencies, q)) if self.latencies else float("nan")

    @property
    def refused_otherwise(self) -> dict[str, int]:
        """Malformed requests refused with something other than 400 / INVALID_ARGUMENT, by kind/status."""
        return {k: v for k, v in self.statuses.items() if not k.endswith("/" + REFUSED[self.protocol])}

    def to_dict(self) -> dict[str, object]:
        return {"protocol": self.protocol, "clients": self.clients, "requests": self.requests,
                "malformed_share": self.malformed_share, "seconds": round(self.seconds, 3),
                "good": len(self.latencies) + len(self.errors), "good_failed": len(self.errors),
                "good_mismatches": len(self.mismatches), "worst_scaled_error": float(f"{self.worst_error:.3g}"),
                "malformed": self.malformed, "malformed_accepted": len(self.accepted),
                "malformed_not_400": sum(self.refused_otherwise.values()), "tracebacks": self.tracebacks,
                "images_per_s": round(self.throughput, 1), "p50_ms": round(self.percentile_ms(50), 2),
                "p99_ms": round(self.percentile_ms(99), 2), "statuses": dict(sorted(self.statuses.items()))}


def _status(exc: Exception) -> tuple[str, str]:
    status = getattr(exc, "status", None)
    message = exc.message() if hasattr(exc, "message") and callable(exc.message) else str(exc)
    return str(status() if callable(status) else status), str(message)


class _Worker:
    """One client thread's requests (shared result under a lock)."""

    def __init__(self, run: "_Run", index: int) -> None:
        self.run, self.index = run, index
        self.rng = np.random.default_rng(run.seed + index)
        self.conn = _client(run.protocol).InferenceServerClient(url=run.url)

    def good(self, k: int) -> None:
        run = self.run
        n = run.batch_sizes[(self.index + k) % len(run.batch_sizes)]
        pick = self.rng.integers(0, run.rows, size=n)
        feed = {name: np.ascontiguousarray(array[pick]) for name, array in run.pool.items()}
        t0 = time.perf_counter()
        try:
            got = infer_once(run.protocol, run.url, run.model, feed, run.outputs, connection=self.conn)
        except Exception as exc:  # a good request refused or failed: counted, never hidden
            status, message = _status(exc)
            with run.lock:
                run.result.errors.append(f"client {self.index} request {k}: {status} {message.splitlines()[0]}")
                run.result.tracebacks += "Traceback" in message
            return
        elapsed = time.perf_counter() - t0
        problems = []
        for o in run.outputs:
            want = run.expected[o][pick]
            if got[o].shape != want.shape:
                problems.append(f"{o}: shape {list(got[o].shape)}, expected {list(want.shape)}")
                continue
            error = scaled_error(got[o], want)
            run.note_error(error)
            if not error <= run.tolerance:  # NaN counts as a mismatch
                problems.append(f"{o}: scaled error {error:.2e} > {run.tolerance:g}")
        with run.lock:
            run.result.latencies.append(elapsed)
            run.result.images += n
            if problems:
                run.result.mismatches.append(f"client {self.index} request {k}: {'; '.join(problems)}")

    def malformed(self, k: int, kind: str) -> None:
        run = self.run
        pick = self.rng.integers(0, run.rows, size=1)
        good = {name: np.ascontiguousarray(array[pick]) for name, array in run.pool.items()}
        feed = malformed_feed(kind, good, run.max_batch_size)
        message = ""
        try:
            if kind == "garbage_body" and run.protocol == "http":
                status = _send_garbage_http(run.url, run.model)
            else:
                infer_once(run.protocol, run.url, run.model, feed, run.outputs, connection=self.conn,
                           raw=b"\x07" * 7 if kind == "garbage_body" else None)
                status = "answered"
        except Exception as exc:  # the expected outcome: an error response
            status, message = _status(exc)
        with run.lock:
            run.result.malformed += 1
            run.result.statuses[f"{kind}/{status}"] += 1
            run.result.tracebacks += "Traceback" in message
            if status.startswith("2") or status == "answered":
                run.result.accepted.append(f"client {self.index} request {k}: {kind} answered as valid")

    def __call__(self) -> None:
        run = self.run
        run.gate.wait()
        kinds = run.kinds
        for k in range(run.requests_per_client):
            if run.malformed_share and self.rng.random() < run.malformed_share:
                self.malformed(k, kinds[(self.index + k) % len(kinds)])
            else:
                self.good(k)
        self.conn.close()


@dataclass
class _Run:
    url: str
    model: str
    protocol: str
    pool: Mapping[str, np.ndarray]
    expected: Mapping[str, np.ndarray]
    tolerance: float
    clients: int
    requests_per_client: int
    batch_sizes: Sequence[int]
    malformed_share: float
    max_batch_size: int
    kinds: Sequence[str]
    seed: int
    result: LoadResult
    lock: threading.Lock = field(default_factory=threading.Lock)
    gate: threading.Barrier | None = None

    def __post_init__(self) -> None:
        self.outputs = list(self.expected)
        self.rows = len(next(iter(self.pool.values())))
        self.gate = threading.Barrier(self.clients + 1)

    def note_error(self, error: float) -> None:
        with self.lock:
            self.result.worst_error = max(self.result.worst_error, error)


def scaled_error(got: np.ndarray, want: np.ndarray) -> float:
    """max |got - want| / max |want|: the error relative to the output's scale."""
    return float(np.abs(got.astype(np.float64) - want).max() / max(float(np.abs(want).max()), 1e-12))


def run_load(url: str, model: str, *, pool: Mapping[str, np.ndarray], expected: Mapping[str, np.ndarray],
             tolerance: float = 1e-4, clients: int = 8,
             requests_per_client: int = 100, batch_sizes: Sequence[int] = (1, 2, 4), protocol: str = "http",
             seed: int = 0, malformed_share: float = 0.0, max_batch_size: int = 8,
             kinds: Sequence[str] = MALFORMED_KINDS) -> LoadResult:
    """``clients`` threads each send ``requests_per_client`` requests: good ones of rows drawn from
    ``pool`` (batch sizes cycling through ``batch_sizes``), compared with the same rows of
    ``expected`` (``scaled_error`` within ``tolerance``; the worst is reported), and, with probability ``malformed_share``, a malformed one (``kinds`` in turn)."""
    result = LoadResult(protocol, clients, clients * requests_per_client, malformed_share=malformed_share)
    run = _Run(url, model, protocol, pool, expected, tolerance, clients, requests_per_client, tuple(batch_sizes),
               malformed_share, max_batch_size, tuple(kinds), seed, result)
    threads = [threading.Thread(target=_Worker(run, i), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    assert run.gate is not None
    run.gate.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    result.seconds = time.perf_counter() - t0
    return result
