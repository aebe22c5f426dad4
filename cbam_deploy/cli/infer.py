"""``cbam-infer``: run an exported model on images or a .npy batch, preprocessing from its metadata."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from ..artifacts import atomic_write_bytes
from ..errors import UsageError
from ..model_dir import ExportedModel
from ..preprocess import IMAGE_SUFFIXES, load_image, load_npy
from .common import EXIT_OK, ArgumentParser, add_debug_flag, print_json, run_command


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="cbam-infer",
        description="Classify images (PNG/JPEG) or a .npy batch with an exported model. Resizing and "
                    "normalisation come from the model's own metadata; class names too, when it has them.")
    p.add_argument("model", help="an exported model folder (models/NAME) or .onnx file")
    p.add_argument("inputs", nargs="+", help="image files, or one .npy file (N x C x H x W float32, preprocessed)")
    p.add_argument("--backend", choices=["onnxruntime", "eager"], default="onnxruntime",
                   help="onnxruntime (default) runs the ONNX; eager runs the PyTorch model it was exported from")
    p.add_argument("--provider", default="cpu", help="ONNX Runtime provider: cpu (default), cuda, tensorrt")
    p.add_argument("--top-k", type=int, default=3, help="classes to print per input (default 3)")
    p.add_argument("--allow-nonfinite", action="store_true", help="run inputs containing NaN/Inf instead of refusing")
    p.add_argument("--attention-map", metavar="OUT.png", help="write each input beside its spatial attention map "
                                                              "(from the eager model; images only)")
    p.add_argument("--block", default=None, help="block whose spatial attention to show (default: the first, e.g. layer1.0)")
    p.add_argument("--force", action="store_true", help="overwrite --attention-map if it exists")
    p.add_argument("--json", action="store_true", help="print results as JSON")
    add_debug_flag(p)
    return p


def load_inputs(model: ExportedModel, paths: Sequence[str]) -> tuple[np.ndarray, list[np.ndarray] | None]:
    """The preprocessed batch, and the raw RGB images (None for a .npy batch)."""
    pre = model.preprocessing
    if len(paths) == 1 and paths[0].endswith(".npy"):
        return load_npy(paths[0]), None
    if any(p.endswith(".npy") for p in paths):
        raise UsageError("give either image files or a single .npy batch, not both")
    if not pre.get("mean") or not pre.get("std"):
        raise UsageError(f"model {model.name!r} has no image preprocessing in its metadata; give a preprocessed .npy batch")
    from PIL import Image

    size = pre.get("input_size") or model.traced_shape[2:]
    batch = np.stack([load_image(p, size, pre["mean"], pre["std"]) for p in paths])
    raw = []
    for p in paths:
        with Image.open(p) as img:
            raw.append(np.asarray(img.convert("RGB").resize((int(size[1]), int(size[0])))))
    return batch, raw


def run(args: argparse.Namespace) -> int:
    if args.top_k <= 0:
        raise UsageError(f"--top-k must be positive, got {args.top_k}")
    for p in args.inputs:
        if not p.endswith(".npy") and Path(p).suffix.lower() not in IMAGE_SUFFIXES:
            raise UsageError(f"{p!r} is not an image ({', '.join(IMAGE_SUFFIXES)}) or a .npy batch")
    if args.attention_map and Path(args.attention_map).exists() and not args.force:
        raise UsageError(f"{args.attention_map!r} already exists; pass --force to overwrite it")
    model = ExportedModel.open(args.model)
    if len(model.input_names) != 1:
        raise UsageError(f"model {model.name!r} takes {len(model.input_names)} inputs ({', '.join(model.input_names)}); "
                         "cbam-infer feeds one image input: use the Python API (cbam_deploy.api) or tritonclient")
    batch, raw = load_inputs(model, args.inputs)
    if args.backend == "eager":
        runner = model.eager_runner()
    else:
        from ..backends.onnxruntime import OnnxRuntimeRunner

        runner = OnnxRuntimeRunner(model.onnx_path, provider=args.provider, allow_nonfinite=args.allow_nonfinite)
    runner.allow_nonfinite = args.allow_nonfinite
    with runner:
        logits = runner.infer({model.input_name: batch})[model.output_names[0]].astype(np.float32)
    if logits.ndim != 2:
        raise UsageError(f"model {model.name!r} is not a classifier (output shape {list(logits.shape)}); nothing to rank")
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    classes = model.classes or [str(i) for i in range(logits.shape[1])]
    names = args.inputs if raw is not None else [f"{args.inputs[0]}[{i}]" for i in range(len(batch))]
    results = [{"input": name, "top_k": [{"class": classes[i], "index": int(i), "probability": float(p[i])}
                                          for i in np.argsort(-p)[: args.top_k]]} for name, p in zip(names, probs)]
    if args.attention_map:
        if raw is None:
            raise UsageError("--attention-map needs image files (a .npy batch has no pictures to draw on)")
        import torch

        from ..attention_maps import pick_block, render, spatial_gates

        maps = spatial_gates(model.eager_model(), torch.from_numpy(batch))
        block = pick_block(maps, args.block)
        titles = [f"{Path(r['input']).name}: {r['top_k'][0]['class']} ({r['top_k'][0]['probability']:.2f}) - "
                  f"spatial attention {block}" for r in results]
        atomic_write_bytes(args.attention_map, render(raw, maps[block], titles=titles))
    if args.json:
        print_json({"model": str(model.onnx_path), "backend": runner.name, "results": results,
                    "attention_map": args.attention_map})
    else:
        for r in results:
            print(f"{r['input']}: " + ", ".join(f"{t['class']} {t['probability']:.3f}" for t in r["top_k"]))
        if args.attention_map:
            print(f"wrote {args.attention_map}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    return run_command("cbam-infer", run, build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
