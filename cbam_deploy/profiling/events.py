"""ONNX Runtime's profile JSON (Chrome trace format) -> the time of each node, per run, in ms.

One ``model_run`` event per ``session.run``; one ``<node>_kernel_time`` event per kernel execution
(``cat`` ``Node``), named after the node of the *optimized* graph that ran. The executor's own work
between two kernels (allocating the next outputs, scheduling, waking the thread pool: with intra-op
spinning off, that wake-up is real latency) happens in the gaps between kernel events; each gap is
charged to the kernel that follows it, since dispatching that kernel is what it was spent on. The
time before the first kernel and after the last one stays with the session (``unassigned``).
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ..errors import UsageError

KERNEL_SUFFIX = "_kernel_time"
KEEP = 0.25  # the least share of a node's profiled time that the profiler-cost correction leaves


@dataclass
class NodeTimes:
    """Per node of the graph that ran: its op type and its time (kernel + the gap before it) per run."""

    op_types: dict[str, str] = field(default_factory=dict)
    per_run: dict[str, list[float]] = field(default_factory=dict)  # ms, one entry per profiled run
    kernel_per_run: dict[str, list[float]] = field(default_factory=dict)  # ms, kernel events alone
    run_ms: list[float] = field(default_factory=list)  # ms, each model_run event
    providers: dict[str, str] = field(default_factory=dict)

    def median(self, node: str) -> float:
        return statistics.median(self.per_run[node])

    def kernel_median(self, node: str) -> float:
        return statistics.median(self.kernel_per_run[node])

    @property
    def run_median(self) -> float:
        return statistics.median(self.run_ms) if self.run_ms else 0.0


def load_events(path: str | Path) -> list[dict[str, Any]]:
    """The event list of one profile file (a JSON list of trace events)."""
    try:
        events = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read ONNX Runtime profile {path}: {exc}") from None
    if not isinstance(events, list):
        raise UsageError(f"{path}: not an ONNX Runtime profile (expected a JSON list of trace events)")
    return events


def node_times(events: Iterable[dict[str, Any]], *, skip_runs: int = 0) -> NodeTimes:
    """Group kernel events by ``model_run`` and charge each inter-kernel gap to the following kernel.

    ``skip_runs``: the first runs to ignore (warm-up). A node executed several times in one run
    (inside a loop) gets the sum of its executions.
    """
    events = [e for e in events if isinstance(e, dict) and "ts" in e and "dur" in e]
    runs = sorted((e for e in events if e.get("name") == "model_run"), key=lambda e: e["ts"])[skip_runs:]
    kernels = sorted((e for e in events if e.get("cat") == "Node" and str(e.get("name", "")).endswith(KERNEL_SUFFIX)),
                     key=lambda e: e["ts"])
    times = NodeTimes()
    if not runs:
        raise UsageError("the ONNX Runtime profile holds no model_run event (no profiled run)")
    k = 0
    for run in runs:
        start, end = run["ts"], run["ts"] + run["dur"]
        while k < len(kernels) and kernels[k]["ts"] < start:
            k += 1
        this: dict[str, float] = {}
        this_kernel: dict[str, float] = {}
        cursor = start
        while k < len(kernels) and kernels[k]["ts"] <= end:
            e = kernels[k]
            name = e["name"][: -len(KERNEL_SUFFIX)]
            args = e.get("args") or {}
            times.op_types.setdefault(name, str(args.get("op_name", "?")))
            times.providers.setdefault(name, str(args.get("provider", "")))
            gap = max(0.0, e["ts"] - cursor)
            this[name] = this.get(name, 0.0) + (gap + e["dur"]) / 1000.0
            this_kernel[name] = this_kernel.get(name, 0.0) + e["dur"] / 1000.0
            cursor = max(cursor, e["ts"] + e["dur"])
            k += 1
        times.run_ms.append(run["dur"] / 1000.0)
        for name in times.op_types:
            times.per_run.setdefault(name, []).append(this.get(name, 0.0))
            times.kernel_per_run.setdefault(name, []).append(this_kernel.get(name, 0.0))
    return times


def calibrate(times: NodeTimes, e2e_ms: float) -> tuple[dict[str, float], float, float]:
    """Per-node ms in terms of the unprofiled latency ``e2e_ms``: (node -> ms, covered share, c).

    The profiler's own cost is about the same for every kernel (timestamps, shape strings, thread
    statistics), so it inflates a network of many small nodes (attention) more than one of a few
    large ones: ``c = (profiled run - unprofiled run) / kernels per run`` is taken off every kernel of
    every run (leaving each at least ``KEEP`` of its time). A node's time is then its share of each
    run, averaged over the runs (shares add up; a run's stalls on a loaded machine fall on its nodes by
    their duration, while the medians of single nodes would leave them out: measured under load, the
    node medians summed to 61 % of the median run), applied to ``e2e_ms`` times ``covered``, the median
    share of a run that its kernels and the gaps before them account for.
    """
    nodes = list(times.per_run)
    runs = min((len(v) for v in times.per_run.values()), default=0)
    if not nodes or runs == 0 or e2e_ms <= 0:
        return {n: 0.0 for n in nodes}, 0.0, 0.0
    c = max(0.0, (times.run_median - e2e_ms) / len(nodes))
    # Every node keeps at least a quarter of its time: in a tiny network the profiler's cost is as large
    # as the kernels, and a uniform subtraction would erase the small ones.
    corrected = {n: [max(KEEP * t, t - c) for t in times.per_run[n][:runs]] for n in nodes}
    covered_runs, fractions = [], {n: 0.0 for n in nodes}
    for r, run_ms in enumerate(times.run_ms[:runs]):
        inside = sum(corrected[n][r] for n in nodes) or 1e-9
        removed = sum(times.per_run[n][r] for n in nodes) - inside
        covered_runs.append(min(1.0, inside / max(run_ms - removed, 1e-9)))
        for n in nodes:
            fractions[n] += corrected[n][r] / inside / runs
    covered = statistics.median(covered_runs)
    return {n: f * covered * e2e_ms for n, f in fractions.items()}, covered, c
