"""``cbam-build``: a TensorRT plan from an exported ONNX model, with a sidecar and parity vs eager.
Parses, calls :func:`cbam_deploy.api.build.build`, renders. Imports neither torch nor onnx here."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from .args import add_force_arg, add_json_args, add_model_folder_args, positive_int
from .common import EXIT_OK, ArgumentParser, add_debug_flag, run_command
from .render import print_json

DEFAULT_MAX_BATCH = 32  # backends.tensorrt.profiles.DEFAULT_MAX_BATCH (a test keeps them equal)


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="cbam-build",
        description="Build a TensorRT engine (plan) from a model exported by cbam-export, with Polygraphy's "
                    "TensorRT loaders: strongly typed (the precision comes from the ONNX: fp32, fp16 or int8 Q/DQ), "
                    "one optimization profile, timing cache. Writes OUT/NAME/1/model.plan (a plain plan: trtexec "
                    "loads it) and model.plan.json (TensorRT version, GPU, precision, profile, ONNX SHA-256), then "
                    "checks parity against eager. Needs TensorRT and an NVIDIA GPU: run it in the GPU Docker image.",
        epilog="Exit codes: 0 built and parity passed; 1 build or parity failed; 2 bad input; "
               "3 no TensorRT/GPU here.")
    add_model_folder_args(p)
    p.add_argument("--min-shape", help="e.g. 1x3x64x64 or input:1x3x64x64 (default: batch 1, H/W half the traced)")
    p.add_argument("--opt-shape", help="default: the traced shape")
    p.add_argument("--max-shape", help=f"default: batch {DEFAULT_MAX_BATCH} (see --max-batch), H/W twice the traced")
    p.add_argument("--max-batch", type=positive_int, default=DEFAULT_MAX_BATCH, help=f"default {DEFAULT_MAX_BATCH}")
    p.add_argument("--workspace", type=positive_int, default=None, metavar="MiB", help="builder workspace limit in MiB")
    p.add_argument("--timing-cache", default=None, metavar="PATH", help="load (if present) and save a timing cache")
    p.add_argument("--out", default="models", help="model repository folder (default models/)")
    p.add_argument("--name", default=None, help="model name (default: the model folder's name + _trt)")
    add_force_arg(p, "overwrite an existing plan")
    add_json_args(p)
    add_debug_flag(p)
    return p


def run(args: argparse.Namespace) -> int:
    from ..api.build import build
    from ..progress import RichReporter

    report = build(args.model, out=args.out, name=args.name, force=args.force, max_batch=args.max_batch,
                   min_shape=args.min_shape, opt_shape=args.opt_shape, max_shape=args.max_shape,
                   workspace_mib=args.workspace, timing_cache=args.timing_cache,
                   trust_model_code=args.trust_model_code, verify=args.verify, reporter=RichReporter())
    if args.json:
        print_json(report.to_dict())
    else:
        print(f"wrote {report.plan} ({report.size_bytes / 1e6:.1f} MB, built in {report.seconds:.1f}s); "
              f"parity worst scaled error {report.parity.worst().scaled_error:.2e}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    return run_command("cbam-build", run, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
