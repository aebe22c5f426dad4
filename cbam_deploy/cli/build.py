"""``cbam-build``: a TensorRT plan from an exported ONNX model, with a sidecar and parity vs eager."""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path
from typing import Sequence


from ..artifacts import staged_directory
from ..backends.tensorrt import PlanSidecar, derive_profile, parse_shape_spec, write_sidecar
from ..backends.tensorrt.profiles import DEFAULT_MAX_BATCH
from ..errors import CheckFailedError, UsageError
from ..model_dir import ExportedModel
from .common import EXIT_OK, ArgumentParser, add_debug_flag, print_json, run_command

PLAN_FILE = "model.plan"


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="cbam-build",
        description="Build a TensorRT engine (plan) from a model exported by cbam-export: strongly typed (the "
                    "precision comes from the ONNX: fp32, fp16 or int8 Q/DQ), one optimization profile, timing "
                    "cache. Writes OUT/NAME/1/model.plan (a plain plan: trtexec loads it) and model.plan.json "
                    "(TensorRT version, GPU, precision, profile, ONNX SHA-256), then checks parity against eager. "
                    "Needs TensorRT and an NVIDIA GPU: run it in the GPU Docker image.",
        epilog="Exit codes: 0 built and parity passed; 1 build or parity failed; 2 bad input, or no TensorRT/GPU.")
    p.add_argument("model", help="an exported model folder (models/NAME) or its .onnx file")
    p.add_argument("--min-shape", help="e.g. 1x3x64x64 or input:1x3x64x64 (default: batch 1, H/W half the traced)")
    p.add_argument("--opt-shape", help="default: the traced shape")
    p.add_argument("--max-shape", help=f"default: batch {DEFAULT_MAX_BATCH} (see --max-batch), H/W twice the traced")
    p.add_argument("--max-batch", type=int, default=DEFAULT_MAX_BATCH, help=f"default {DEFAULT_MAX_BATCH}")
    p.add_argument("--workspace", type=int, default=None, metavar="MiB", help="builder workspace limit in MiB")
    p.add_argument("--timing-cache", default=None, metavar="PATH", help="load (if present) and save a timing cache")
    p.add_argument("--out", default="models", help="model repository folder (default models/)")
    p.add_argument("--name", default=None, help="model name (default: the ONNX model's name + _trt)")
    p.add_argument("--force", action="store_true", help="overwrite an existing plan")
    p.add_argument("--json", action="store_true", help="print the build report as JSON")
    add_debug_flag(p)
    return p


def run(args: argparse.Namespace) -> int:
    exported = ExportedModel.open(args.model)
    onnx_path, meta = exported.onnx_path, exported.metadata
    inputs = exported.signature["inputs"]
    names = [str(i["name"]) for i in inputs]
    traced = dict(zip(meta.get("input_names", []), meta.get("input_shapes", [])))
    if args.max_batch <= 0:
        raise UsageError(f"--max-batch must be positive, got {args.max_batch}")
    profile = derive_profile(
        inputs, traced_shapes=traced, max_batch=args.max_batch,
        min_shapes=parse_shape_spec(args.min_shape, names) if args.min_shape else None,
        opt_shapes=parse_shape_spec(args.opt_shape, names) if args.opt_shape else None,
        max_shapes=parse_shape_spec(args.max_shape, names) if args.max_shape else None)
    model_dir = onnx_path.parent.parent
    name = args.name or f"{model_dir.name}_trt"
    target = Path(args.out) / name
    if target.exists() and not args.force:
        raise UsageError(f"{str(target)!r} already exists; pass --force to overwrite it")

    from ..backends.tensorrt.builder import build_plan
    from ..backends.tensorrt.environment import detect

    env = detect()  # one line and exit 2 when TensorRT or the GPU is missing
    # Before the (long) build: the eager reference for parity must be rebuildable from the metadata.
    reference = exported.eager_runner()
    from ..progress import RichReporter

    reporter = RichReporter()
    with staged_directory(target, force=args.force) as staging:
        with reporter.stage("build", f"TensorRT {env.tensorrt_version} on {env.gpu_name}"):
            result = build_plan(onnx_path, profile, workspace_bytes=args.workspace * 2**20 if args.workspace else None,
                                timing_cache=args.timing_cache)
        (staging / "1").mkdir()
        plan_path = staging / "1" / PLAN_FILE
        plan_path.write_bytes(result.plan)
        sidecar = PlanSidecar(
            tensorrt_version=env.tensorrt_version, gpu_name=env.gpu_name, compute_capability=env.compute_capability,
            precision=str(meta.get("precision", "fp32")), profiles=[profile.to_dict()],
            onnx_sha256=hashlib.sha256(onnx_path.read_bytes()).hexdigest(),
            plan_sha256=hashlib.sha256(result.plan).hexdigest(), build_seconds=round(result.seconds, 2),
            workspace_bytes=args.workspace * 2**20 if args.workspace else None,
            extra={"source_onnx": str(onnx_path), "metadata": meta})
        write_sidecar(plan_path, sidecar)
        from ..serving.triton_config import build_config, write_config

        max_batch = min(hi[0] for _, _, hi in profile.shapes.values())  # Triton may batch up to every input's max
        write_config(staging, build_config(name, exported.signature, kind="plan", max_batch_size=max_batch,
                                           metadata=meta))
        with reporter.stage("parity", "eager vs TensorRT"):
            parity = tensorrt_parity(plan_path, exported, reference, profile)
        if not parity.passed:
            raise CheckFailedError("TensorRT parity against eager failed, nothing written: " + "; ".join(parity.failures()))
    summary = {"plan": str(target / "1" / PLAN_FILE), "sidecar": sidecar.__dict__, "parity": parity.to_dict()}
    if args.json:
        print_json(summary)
    else:
        print(f"wrote {summary['plan']} ({len(result.plan) / 1e6:.1f} MB, built in {result.seconds:.1f}s); "
              f"parity worst scaled error {parity.worst().scaled_error:.2e}")
    return EXIT_OK


def tensorrt_parity(plan_path: Path, exported: ExportedModel, reference, profile):
    """Eager against the engine, at shapes inside the profile (opt, batch 3, max batch at min size)."""
    from ..backends.tensorrt.runner import TensorRTRunner
    from ..compare import compare_runners, tolerance_for
    from ..onnx_export.pipeline import random_feed

    precision = str(exported.metadata.get("precision", "fp32"))
    lo, opt, hi = profile.shapes[exported.input_name]
    shapes = {tuple(opt), (min(hi[0], 3), *opt[1:]), tuple(hi[:1]) + tuple(lo[1:])}
    cases = [(f"batch {s[0]} @ {s[2]}x{s[3]}", [s]) for s in sorted(shapes)]
    with reference, TensorRTRunner(plan_path) as trt_runner:
        return compare_runners(reference, trt_runner, cases, backend="tensorrt", precision=precision,
                               tolerance=tolerance_for(precision), classifier=True,  # top-1 only for 2-D outputs
                               make_feed=random_feed)


def main(argv: Sequence[str] | None = None) -> int:
    return run_command("cbam-build", run, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
