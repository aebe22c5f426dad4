"""``cbam-evaluate``: held-out accuracy of a checkpoint (eager) or an exported ONNX model (ONNX Runtime)."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from ..options import ORT_PROVIDERS
from .args import add_json_args, positive_int
from .common import EXIT_OK, ArgumentParser, add_debug_flag, run_command

HELDOUT_COUNT = 1000  # the reference task's held-out split (reference/evaluate.py)


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="cbam-evaluate",
                       description="Top-1 accuracy on the reference task's held-out split. MODEL is an exported "
                                   "model folder or .onnx file (run in ONNX Runtime and compared with the eager "
                                   "model it was exported from), or a checkpoint .pt (run eager).")
    p.add_argument("model", help="models/NAME, models/NAME/1/model.onnx, or a checkpoint .pt")
    p.add_argument("--variant", default=None, help="variant of a .pt checkpoint (default: the checkpoint's own)")
    p.add_argument("--count", type=positive_int, default=HELDOUT_COUNT, help=f"held-out images (default {HELDOUT_COUNT})")
    p.add_argument("--provider", choices=ORT_PROVIDERS, default="cpu", help="ONNX Runtime provider (default cpu)")
    p.add_argument("--no-verify", dest="verify", action="store_false",
                   help="skip the check of model.onnx against the SHA-256 in export.json")
    add_json_args(p)
    add_debug_flag(p)
    return p


def run(args: argparse.Namespace) -> int:
    from ..api.evaluate import evaluate
    from .render import print_json

    name, report = evaluate(args.model, variant=args.variant, count=args.count, provider=args.provider,
                            verify=args.verify)
    path = args.model
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
