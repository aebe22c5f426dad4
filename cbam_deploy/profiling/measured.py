"""What a backend's profiler hands the attribution, and the interleaved timing every backend uses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

from ..bench import time_interleaved


@dataclass
class RuntimeProfile:
    """What one backend measured: the graph that ran, per-node times and the unprofiled latency."""

    backend: str
    ran: list[tuple[str, str, list[str], list[str]]]  # (name, op type, inputs, outputs), execution order
    node_ms: dict[str, float]  # per node, ms, in terms of the unprofiled latency (events.calibrate)
    e2e_ms: float  # median latency without profiling
    profiled_ms: float  # median latency of the profiled runs
    runs: int
    samples: dict[str, list[float]] = field(default_factory=dict)  # e2e, profiled: seconds per run
    notes: list[str] = field(default_factory=list)
    fused_from: dict[str, list[str]] = field(default_factory=dict)  # layer -> original layer names (OpenVINO)


def interleaved(calls: Mapping[str, Callable[[], object]], warmup: int, runs: int) -> dict[str, list[float]]:
    """Seconds per call, label -> runs: :func:`cbam_deploy.bench.time_interleaved`'s round-robin."""
    return {label: t.seconds for label, t in time_interleaved(calls, batch=1, warmup=warmup, runs=runs).items()}
