"""``cbam-infer``: run an exported model on images or a .npy batch, preprocessing from its metadata."""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from ..options import ORT_PROVIDERS
from .args import OutputFileArg, add_force_arg, add_json_args, add_model_folder_args, positive_int
from .common import EXIT_OK, ArgumentParser, add_debug_flag, run_command


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="cbam-infer",
        description="Classify images (PNG/JPEG/BMP/WebP) or a .npy batch with an exported model. Resizing and "
                    "normalisation come from the model's own metadata; class names too, when it has them.",
        epilog="Exit codes: 0 ok; 1 the model answered NaN/Inf or failed a check; 2 bad input; 3 environment.")
    add_model_folder_args(p)
    p.add_argument("inputs", nargs="+", help="image files, or one .npy file (N x C x H x W float32, preprocessed)")
    p.add_argument("--backend", choices=["onnxruntime", "openvino", "eager"], default="onnxruntime",
                   help="onnxruntime (default) runs the ONNX; openvino runs the ONNX with OpenVINO on the CPU (f32; "
                        "the openvino extra); eager runs the PyTorch model it was exported from")
    p.add_argument("--provider", choices=ORT_PROVIDERS, default="cpu", help="ONNX Runtime provider (default cpu)")
    p.add_argument("--top-k", type=positive_int, default=3, help="classes to print per input (default 3)")
    p.add_argument("--allow-nonfinite", action="store_true", help="run inputs containing NaN/Inf instead of refusing")
    p.add_group(OutputFileArg("--attention-map", "OUT.png", "write each input beside its spatial attention map (from "
                                                            "the eager model; images only)"))
    p.add_argument("--block", default=None, help="block whose spatial attention to show (default: the first, e.g. layer1.0)")
    add_force_arg(p, "overwrite --attention-map if it exists")
    add_json_args(p)
    add_debug_flag(p)
    return p


def run(args: argparse.Namespace) -> int:
    from ..api.infer import attention_picture, classify
    from ..model_dir import ExportedModel
    from .render import print_json

    model = ExportedModel.open(args.model, trust_model_code=args.trust_model_code, verify=args.verify)
    result = classify(model, args.inputs, backend=args.backend, provider=args.provider, top_k=args.top_k,
                      allow_nonfinite=args.allow_nonfinite)
    if args.attention_map:
        from ..artifacts import atomic_write_bytes

        picture, _ = attention_picture(model, result, args.block)
        atomic_write_bytes(args.attention_map, picture)
    if args.json:
        print_json({"model": str(model.onnx_path), "backend": result.backend, "results": result.results,
                    "attention_map": args.attention_map})
        return EXIT_OK
    for r in result.results:
        print(f"{r['input']}: " + ", ".join(f"{t['class']} {t['probability']:.3f}" for t in r["top_k"]))
    if args.attention_map:
        print(f"wrote {args.attention_map}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    return run_command("cbam-infer", run, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
