"""``cbam-bench``: latency and throughput per backend, precision and batch size, eager side by side."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from ..artifacts import atomic_write_bytes, atomic_write_text
from ..api import benchmark
from ..bench import plot_png
from ..errors import UsageError
from ..model_dir import ExportedModel
from ..precision import PRECISIONS
from ..precision.calibration import load_calibration
from .common import EXIT_OK, ArgumentParser, add_debug_flag, run_command

HOW_TO_READ = ("Configurations are timed interleaved in one process (one call each per round), ONNX Runtime "
               "intra-op spinning off so idle sessions do not steal cores. On a noisy machine compare the "
               "ratios and the medians (p50), not single runs or p99. Keep --threads at or below the number of idle "
               "cores: eager PyTorch's OpenMP threads stall at every parallel region when a core is busy elsewhere "
               "(measured here: 9 ms alone, 55-490 ms with a training job on the other core).")


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="cbam-bench", description="Benchmark an exported model: PyTorch eager and ONNX Runtime "
                       "(FP32, FP16, INT8 derived from the FP32 export), p50/p90/p99 latency and throughput per "
                       "batch size, ratios against eager. " + HOW_TO_READ)
    p.add_argument("model", help="an exported FP32 model folder (models/NAME) or .onnx file")
    p.add_argument("--precisions", default="fp32", help="comma-separated ONNX Runtime precisions (default fp32)")
    p.add_argument("--provider", default="cpu", help="ONNX Runtime provider (default cpu)")
    p.add_argument("--batch-sizes", default="1,8", help="comma-separated (default 1,8)")
    p.add_argument("--warmup", type=int, default=10, help="untimed calls per configuration (default 10)")
    p.add_argument("--runs", type=int, default=50, help="timed rounds (default 50)")
    p.add_argument("--seconds", type=float, default=None, help="time budget per batch size instead of --runs")
    p.add_argument("--threads", type=int, default=2, help="intra-op threads for torch and ONNX Runtime (default 2)")
    p.add_argument("--optimization-level", choices=("disable", "basic", "extended", "all"), default="all",
                   help="ONNX Runtime graph optimization level (default all)")
    p.add_argument("--no-eager", dest="eager", action="store_false", help="skip eager PyTorch")
    p.add_argument("--bare", action="store_true", help="also time a bare InferenceSession.run (FP32): the runner's overhead")
    p.add_argument("--calibration", default=None, help="INT8 calibration (default 'reference' for reference models)")
    p.add_argument("--json", dest="json_out", default=None, metavar="PATH", help="write results as JSON")
    p.add_argument("--plot", default=None, metavar="OUT.png", help="write a bar chart of median latencies")
    add_debug_flag(p)
    return p


def run(args: argparse.Namespace) -> int:
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    if not precisions or any(p not in PRECISIONS for p in precisions):
        raise UsageError(f"--precisions {args.precisions!r}: valid: {', '.join(PRECISIONS)}")
    try:
        batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    except ValueError:
        raise UsageError(f"--batch-sizes {args.batch_sizes!r}: expected comma-separated integers") from None
    if any(b <= 0 for b in batch_sizes) or args.runs <= 0 or args.warmup < 0 or args.threads <= 0:
        raise UsageError("--batch-sizes, --runs and --threads must be positive, --warmup not negative")
    model = ExportedModel.open(args.model)
    calibration = None
    if "int8" in precisions:
        source = args.calibration or ("reference" if model.is_reference_task else None)
        if source is None:
            raise UsageError("INT8 needs --calibration DIR|FILE.npy|synthetic for this model")
        pre = model.preprocessing
        calibration, _, _ = load_calibration(source, input_shape=model.traced_shape, mean=pre.get("mean"),
                                             std=pre.get("std"), reference_task=model.is_reference_task)
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=True)
    status = console.status("preparing")
    status.start()
    try:
        timings = benchmark(model, eager=args.eager, precisions=precisions, provider=args.provider,
                            batch_sizes=batch_sizes, threads=args.threads, warmup=args.warmup, runs=args.runs,
                            seconds=args.seconds, calibration=calibration, bare=args.bare,
                            optimization_level=args.optimization_level,
                            on_batch=lambda b, n: status.update(f"batch {b}: {n} configurations interleaved"))
    finally:
        status.stop()
    rows = []
    for t in timings:
        base = next((e for e in timings if e.label == "eager fp32" and e.batch == t.batch), None)
        row = t.to_dict()
        row["vs_eager"] = (base.p50 / t.p50) if base else None
        rows.append(row)
    table = Table(title=f"cbam-bench {model.name} ({args.threads} threads, provider {args.provider})")
    for col in ("configuration", "batch", "runs", "p50 ms", "p90 ms", "p99 ms", "images/s", "speed vs eager"):
        table.add_column(col)
    for r in rows:
        table.add_row(str(r["label"]), str(r["batch"]), str(r["runs"]), f"{r['p50_ms']:.2f}", f"{r['p90_ms']:.2f}",
                      f"{r['p99_ms']:.2f}", f"{r['throughput_per_s']:.0f}",
                      "-" if r["vs_eager"] is None else f"{r['vs_eager']:.2f}x")
    Console().print(table)
    console.print(HOW_TO_READ)
    if args.json_out:
        atomic_write_text(args.json_out, json.dumps({"model": str(model.onnx_path), "threads": args.threads,
                                                     "rows": rows}, indent=2) + "\n")
    if args.plot:
        atomic_write_bytes(args.plot, plot_png(rows, f"{model.name}: median latency"))
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    return run_command("cbam-bench", run, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
