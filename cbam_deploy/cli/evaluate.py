"""``cbam-evaluate``: held-out accuracy of a checkpoint (eager) or an exported ONNX model (ONNX Runtime)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from ..backends.onnxruntime import OnnxRuntimeRunner
from ..backends.torch_eager import TorchRunner
from ..backends.base import TensorSpec
from ..errors import UsageError
from ..model_dir import ExportedModel
from ..models.registry import VARIANTS
from ..models.spec import ModelSpec, build_model
from ..reference.evaluate import HELDOUT_COUNT, evaluate_heldout
from .common import EXIT_OK, ArgumentParser, add_debug_flag, print_json, run_command


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="cbam-evaluate",
                       description="Top-1 accuracy on the reference task's held-out split. MODEL is an exported "
                                   "model folder or .onnx file (run in ONNX Runtime and compared with the eager "
                                   "model it was exported from), or a checkpoint .pt (run eager).")
    p.add_argument("model", help="models/NAME, models/NAME/1/model.onnx, or a checkpoint .pt")
    p.add_argument("--variant", default=None, help="variant of a .pt checkpoint (default: the checkpoint's own)")
    p.add_argument("--count", type=int, default=HELDOUT_COUNT, help=f"held-out images (default {HELDOUT_COUNT})")
    p.add_argument("--provider", default="cpu", help="ONNX Runtime provider: cpu, cuda, tensorrt (default cpu)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    add_debug_flag(p)
    return p


def _eager_runner(model) -> TorchRunner:
    return TorchRunner(model, [TensorSpec("input", np.dtype(np.float32), (None, 3, None, None))], ["logits"])


def run(args: argparse.Namespace) -> int:
    path = Path(args.model)
    if args.count <= 0:
        raise UsageError(f"--count must be positive, got {args.count}")
    if path.is_dir() or path.suffix == ".onnx":
        exported = ExportedModel.open(path)
        if (exported.metadata.get("model_spec") or {}).get("arch") != "resnet_mini":
            raise UsageError(f"{str(exported.onnx_path)!r} is not a reference-task model (host resnet_mini); "
                             "nothing to evaluate")
        path = exported.onnx_path
        candidate = OnnxRuntimeRunner(path, provider=args.provider)
        reference = exported.eager_runner()
        name = f"onnxruntime[{args.provider}]"
    else:
        from ..checkpoint import read_checkpoint

        _, extra = read_checkpoint(path)
        config = extra.get("cbam_deploy") or {}
        variant = args.variant or config.get("variant")
        if variant is None:
            raise UsageError(f"{str(path)!r} does not say its variant; pass --variant")
        if variant != "none":
            VARIANTS.get(variant)
        built = build_model(ModelSpec(arch=config.get("arch", "resnet_mini"),
                                      variant=None if variant == "none" else variant, weights=str(path)))
        candidate = _eager_runner(built.model)
        reference = None
        name = "torch-eager"
    with candidate:
        if reference is not None:
            with reference:
                report = evaluate_heldout(lambda x: candidate.infer({"input": x})["logits"],
                                          reference=lambda x: reference.infer({"input": x})["logits"], count=args.count)
        else:
            report = evaluate_heldout(lambda x: candidate.infer({"input": x})["logits"], count=args.count)
    if args.json:
        print_json({"model": str(path), "backend": name, **report.to_dict()})
    else:
        line = f"{name}: held-out top-1 {100 * report.top1:.2f}% on {report.count} images"
        if report.reference_top1 is not None:
            line += (f"; eager {100 * report.reference_top1:.2f}%, top-1 agreement {100 * report.top1_agreement:.2f}%, "
                     f"max scaled logit error {report.max_scaled_logit_error:.2e}")
        print(line)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    return run_command("cbam-evaluate", run, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
