"""``cbam-gpu-check``: prove the GPU path (TensorRT, ONNX Runtime CUDA, CUDA runtime) in one command.
Parses, calls :func:`cbam_deploy.api.gpu_check.gpu_check`, writes the Markdown report, renders the
verdict. Imports neither torch nor onnx here."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from ..options import ONNX_PRECISIONS
from .args import BatchSizesArgs, PrecisionsArgs, add_force_arg, add_json_args, csv_choices, positive_int
from .common import EXIT_FAILED, EXIT_OK, ArgumentParser, add_debug_flag, run_command
from .render import print_json


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="cbam-gpu-check",
        description="Prove the GPU path inside the GPU image: for the reference models and a ResNet-50 of every "
                    "variant, build FP32, FP16 and INT8 TensorRT engines, check parity against eager and held-out "
                    "accuracy (TensorRT and ONNX Runtime CUDA), time TensorRT against ONNX Runtime CUDA and eager "
                    "at batch 1 and 8, and write a Markdown report ending in a one-line verdict.",
        epilog="Exit codes: 0 every check passed; 1 a check failed (named); 2 bad input; 3 no GPU, TensorRT or "
               "CUDA libraries here (the line says which).")
    p.add_argument("--out", default="gpu-check", help="folder for the exports and engines (default gpu-check/)")
    p.add_argument("--report", default=None, metavar="PATH",
                   help="Markdown report (default OUT/gpu-check.md; never overwritten without --force)")
    p.add_argument("--hosts", default="resnet_mini,resnet50", metavar="A,B",
                   help="hosts to check (default resnet_mini,resnet50: the reference models and ResNet-50)")
    p.add_argument("--variants", default=None, metavar="A,B", help="variants (default: every registered one)")
    p.add_group(PrecisionsArgs(",".join(ONNX_PRECISIONS), ONNX_PRECISIONS))
    p.add_group(BatchSizesArgs("1,8", help="timed batch sizes (default 1,8)"))
    p.add_argument("--runs", type=positive_int, default=50, help="timed runs per configuration (default 50)")
    p.add_argument("--without-tensorrt", action="store_true",
                   help="check everything up to TensorRT (a GPU machine without TensorRT); the verdict says so")
    add_force_arg(p, "overwrite an existing report")
    add_json_args(p)
    add_debug_flag(p)
    return p


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..api.gpu_check import HOSTS, gpu_check, write_report
    from ..progress import RichReporter

    hosts = csv_choices(args.hosts, HOSTS, "--hosts")
    variants = args.variants.split(",") if args.variants else None
    report_path = Path(args.report) if args.report else Path(args.out) / "gpu-check.md"
    if report_path.exists() and not args.force:
        from ..errors import UsageError

        raise UsageError(f"{str(report_path)!r} already exists; pass --force to overwrite it")
    report = gpu_check(args.out, hosts=hosts, variants=variants, precisions=args.precisions,
                       batch_sizes=args.batch_sizes, runs=args.runs,
                       require_tensorrt=not args.without_tensorrt, reporter=RichReporter())
    write_report(report, report_path, force=args.force)
    if args.json:
        print_json({"passed": report.passed, "verdict": report.verdict(), "failures": report.failures(),
                    "report": str(report_path)})
    else:
        print(f"{report.verdict()} (report: {report_path})")
    return EXIT_OK if report.passed else EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    return run_command("cbam-gpu-check", run, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
