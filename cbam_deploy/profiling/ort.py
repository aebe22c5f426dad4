"""ONNX Runtime (CPU or CUDA provider): per-node times from its profiler, end-to-end time without it.

Two sessions of the same model, timed interleaved (one call each per round, intra-op spinning off):
one with ``SessionOptions.enable_profiling`` (and the optimized graph saved, so the nodes that ran
can be traced back to the exported ones), one without, whose median is the latency the attribution
divides. The profile JSON ONNX Runtime writes is read and deleted; nothing is left behind.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Mapping

import numpy as np

from .events import NodeTimes, calibrate, load_events, node_times
from .measured import RuntimeProfile, interleaved


def _ran(times: NodeTimes, optimized) -> list[tuple[str, str, list[str], list[str]]]:
    """The optimized graph's nodes in the profile's execution order (nodes the profile never saw last)."""
    graph = {n.name: (n.op_type, list(n.input), list(n.output)) for n in optimized.graph.node} if optimized else {}
    order = list(times.per_run)
    ran = [(n, times.op_types[n], *graph.get(n, (times.op_types[n], [], []))[1:]) for n in order]
    ran += [(n, op, ins, outs) for n, (op, ins, outs) in graph.items() if n not in times.per_run]
    return ran


def profile_onnxruntime(model: str | Path | bytes, feed: Mapping[str, np.ndarray], *, provider: str = "cpu",
                        threads: int = 2, warmup: int = 5, runs: int = 30,
                        optimization_level: str = "all", extra: Mapping[str, str | bytes] | None = None) -> RuntimeProfile:
    """Profile ``model`` on ONNX Runtime: ``runs`` profiled and ``runs`` plain calls, interleaved, with
    the ``extra`` models (label -> serialized ONNX: the ablations) timed in the same rounds."""
    import onnx

    from ..backends.onnxruntime import create_session

    with tempfile.TemporaryDirectory(prefix="cbam-profile-") as tmp:
        optimized_path = Path(tmp) / "optimized.onnx"
        profiled = create_session(model, provider=provider, threads=threads, spinning=False,
                                  optimization_level=optimization_level, optimized_model_path=optimized_path,
                                  profile_prefix=Path(tmp) / "onnxruntime_profile")
        plain = create_session(model, provider=provider, threads=threads, spinning=False,
                               optimization_level=optimization_level)
        calls = {"e2e": lambda: plain.run(None, dict(feed)), "profiled": lambda: profiled.run(None, dict(feed))}
        for label, data in (extra or {}).items():
            other = create_session(data, provider=provider, threads=threads, spinning=False,
                                   optimization_level=optimization_level)
            calls[label] = lambda s=other: s.run(None, dict(feed))
        try:
            samples = interleaved(calls, warmup, runs)
        finally:
            profile_file = profiled.end_profiling()
        try:
            events = load_events(profile_file)
        finally:
            Path(profile_file).unlink(missing_ok=True)
        optimized = onnx.load(str(optimized_path), load_external_data=False) if optimized_path.is_file() else None
    times = node_times(events, skip_runs=warmup)
    e2e_ms = 1000 * float(np.median(samples["e2e"]))
    node_ms, covered, per_kernel = calibrate(times, e2e_ms)
    profile = RuntimeProfile(f"onnxruntime-{provider}", _ran(times, optimized), node_ms, e2e_ms, times.run_median,
                             runs, samples)
    profile.notes.append(f"profiled runs took {times.run_median:.2f} ms against {e2e_ms:.2f} ms unprofiled (medians "
                         f"of {runs}, interleaved): {1000 * per_kernel:.1f} us of profiler cost taken off each of "
                         f"{len(node_ms)} kernels; node times are the profile's proportions of the unprofiled "
                         f"latency, of which the kernels and the gaps before them cover {100 * covered:.1f} %")
    if provider != "cpu":
        profile.notes.append(f"{provider}: kernel events time the launch on the host, not the device; read "
                             "the per-node times as a profile of dispatch unless the provider synchronizes")
    return profile
