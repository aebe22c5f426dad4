"""``cbam-bench``: latency and throughput per backend, precision and batch size, eager side by side."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from ..errors import UsageError
from ..options import BACKENDS, ORT_PROVIDERS
from .args import (BackendsArgs, BatchSizesArgs, OutputFileArg, PrecisionsArgs, ReportArgs, add_calibration_arg,
                   add_json_args, add_model_folder_args, non_negative_int, positive_float, positive_int)
from .bench_profile import ProfileArgs, run_profile
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
    add_model_folder_args(p, what="an exported FP32 model folder (models/NAME) or .onnx file")
    p.add_group(PrecisionsArgs("fp32"))
    p.add_argument("--provider", choices=ORT_PROVIDERS, default="cpu", help="ONNX Runtime provider (default cpu)")
    timed = [b for b in BACKENDS if b != "tensorrt"]
    p.add_group(BackendsArgs(None, timed, help=f"time these backends side by side instead (comma-separated, the names "
                                               f"cbam-validate takes: {','.join(timed)}); bf16 only where a backend "
                                               "runs it natively (openvino)"))
    p.add_group(BatchSizesArgs(None, help="comma-separated batch sizes for dynamic-batch models (default 1,8; with "
                                          "--profile: 1)"))
    p.add_argument("--warmup", type=non_negative_int, default=None,
                   help="untimed calls per configuration (default 10; with --profile: 5)")
    p.add_argument("--runs", type=positive_int, default=None, help="timed rounds (default 50; with --profile: 30)")
    p.add_argument("--seconds", type=positive_float, default=None, help="time budget per batch size instead of --runs")
    p.add_argument("--threads", type=positive_int, default=2, help="intra-op threads for torch and ONNX Runtime (default 2)")
    p.add_argument("--optimization-level", choices=("disable", "basic", "extended", "all"), default="all",
                   help="ONNX Runtime graph optimization level (default all)")
    p.add_argument("--no-eager", dest="eager", action="store_false", help="skip eager PyTorch")
    p.add_argument("--bare", action="store_true", help="also time a bare InferenceSession.run (FP32): the runner's overhead")
    add_calibration_arg(p, "Default: 'reference' for the reference model.")
    p.add_group(ProfileArgs())
    add_json_args(p)
    p.add_group(OutputFileArg("--plot", "OUT.png", "write a bar chart of median latencies (with --profile: stacked "
                                                   "bars per stage and per attention block; needs the 'plot' extra)"))
    p.add_group(ReportArgs(markdown=True))
    add_debug_flag(p)
    return p


def run(args: argparse.Namespace) -> int:
    from ..api.bench import benchmark
    from ..api.calibration import calibration_for
    from ..model_dir import ExportedModel
    from .render import console, print_json, write_reports

    precisions, backends = args.precisions, args.backends
    if args.profile:
        return run_profile(args, precisions)
    batch_sizes = [1, 8] if args.batch_sizes is None else args.batch_sizes
    model = ExportedModel.open(args.model, trust_model_code=args.trust_model_code, verify=args.verify)
    if args.eager and model.needs_trust:
        raise UsageError(f"eager timing rebuilds {model.name!r} by importing {model.user_factory}: pass "
                         "--trust-model-code to allow it, or --no-eager to time ONNX Runtime alone")
    calibration = calibration_for(model, args.calibration, required=True)[0] if "int8" in precisions else None
    err = console(True)
    status = err.status("preparing")
    status.start()
    try:
        timings = benchmark(model, eager=args.eager, precisions=precisions, provider=args.provider,
                            batch_sizes=batch_sizes, threads=args.threads,
                            warmup=10 if args.warmup is None else args.warmup, runs=50 if args.runs is None else args.runs,
                            seconds=args.seconds, calibration=calibration, bare=args.bare,
                            optimization_level=args.optimization_level, backends=backends,
                            on_batch=lambda b, n: status.update(f"batch {b}: {n} configurations interleaved"))
    finally:
        status.stop()
    rows = []
    for t in timings:
        base = next((e for e in timings if e.label == "eager fp32" and e.batch == t.batch), None)
        rows.append(t.to_dict() | {"vs_eager": (base.p50 / t.p50) if base else None})
    where = f"backends {', '.join(backends)}" if backends else f"provider {args.provider}"
    _print_table(rows, f"cbam-bench {model.name} ({args.threads} threads, {where})", args.json)
    err.print(HOW_TO_READ)
    result = {"model": str(model.onnx_path), "threads": args.threads, "rows": rows}
    if args.json:
        print_json(result)
    write_reports(args, result)
    if args.markdown:
        from ..artifacts import atomic_write_text

        atomic_write_text(args.markdown, _markdown(rows, f"cbam-bench {model.name}"))
    if args.plot:
        from ..artifacts import atomic_write_bytes
        from ..bench import plot_png

        atomic_write_bytes(args.plot, plot_png(rows, f"{model.name}: median latency"))
        err.print(f"wrote {args.plot}")
    return EXIT_OK


def _print_table(rows: list[dict], title: str, json_stdout: bool) -> None:
    from rich.table import Table

    from .render import console

    table = Table(title=title)
    for col in ("configuration", "batch", "runs", "p50 ms", "p90 ms", "p99 ms", "images/s", "speed vs eager"):
        table.add_column(col)
    for r in rows:
        table.add_row(str(r["label"]), str(r["batch"]), str(r["runs"]), f"{r['p50_ms']:.2f}", f"{r['p90_ms']:.2f}",
                      f"{r['p99_ms']:.2f}", f"{r['throughput_per_s']:.0f}",
                      "-" if r["vs_eager"] is None else f"{r['vs_eager']:.2f}x")
    console(json_stdout).print(table)


def _markdown(rows: list[dict], title: str) -> str:
    lines = [f"# {title}\n", "| configuration | batch | runs | p50 ms | p90 ms | p99 ms | images/s | speed vs eager |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['label']} | {r['batch']} | {r['runs']} | {r['p50_ms']:.2f} | {r['p90_ms']:.2f} | "
                     f"{r['p99_ms']:.2f} | {r['throughput_per_s']:.0f} | "
                     + ("-" if r["vs_eager"] is None else f"{r['vs_eager']:.2f}x") + " |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    return run_command("cbam-bench", run, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
