"""PyTorch's two ONNX exporters side by side: TorchScript-based (``dynamo=False``) and dynamo.

    python benchmarks/exporter_choice.py --json exporters.json

For every CBAM variant on ResNet-50 (and the plain host) and every example network under
``examples/user_models/``: BatchNorm folded, whole-map pooling made global (what ``cbam-export``
does before exporting), then each exporter with batch, height and width dynamic (``--dynamic all``,
the default; ``--dynamic batch`` keeps the resolution static). Measured per
exporter: export time, node count (raw and after onnxsim), whether the dynamic axes stay dynamic
and hold at another batch size and resolution (parity against eager there), and how many pools
have a fixed kernel covering the whole traced map (global pooling baked to one size; 0 is right).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from cbam_deploy.fold import fold_batchnorms
from cbam_deploy.models import create_model, list_variants
from cbam_deploy.models.user_model import UserModelSpec, build_user_model
from cbam_deploy.onnx_export import export_to_onnx
from cbam_deploy.onnx_export.graph import globalize_whole_map_pools, simplify
from cbam_deploy.onnx_export.outputs import flatten_module, output_axes
from cbam_deploy.optimize import globalize_pooling

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "user_models"
EXAMPLE_SHAPES = {"authors_style": ["1x3x64x64", "1x1x64x64"], "timm_style": ["1x3x96x96"],
                  "ultralytics_style": ["1x3x256x256"]}


def models(arch: str, shape: tuple[int, ...]):
    for variant in [None, *list_variants()]:
        torch.manual_seed(0)
        yield f"{arch}+{variant or 'plain'}", create_model(arch, variant).eval(), [shape]
    for path in sorted(EXAMPLES.glob("*.py")):
        shapes = EXAMPLE_SHAPES.get(path.stem)
        if shapes:
            model = build_user_model(UserModelSpec(f"{path}:build_net", seed=0)).model
            yield path.stem, model, [tuple(int(d) for d in s.split("x")) for s in shapes]


def fixed_whole_map_pools(proto: onnx.ModelProto) -> int:
    """Pools whose fixed kernel covers the whole traced map (global pooling baked to one size)."""
    inferred = onnx.shape_inference.infer_shapes(proto)
    return globalize_whole_map_pools(inferred)


def measure(name, model, shapes, exporter: str, dynamic: str = "all") -> dict:
    folded, _ = fold_batchnorms(model)
    folded, _ = globalize_pooling(folded)
    with torch.no_grad():
        wrapped, out_names = flatten_module(folded, folded(*(torch.randn(*s) for s in shapes)))
    inputs = tuple(torch.randn(2, *s[1:]) for s in shapes)
    in_names = ["input"] if len(shapes) == 1 else [f"input_{i}" for i in range(len(shapes))]
    axes = [{0: "batch", 2: "height", 3: "width"} if dynamic == "all" else {0: "batch"} for _ in shapes]
    other = [(3, s[1], s[2] * 5 // 4 // 32 * 32 or 32, s[3] * 3 // 2 // 32 * 32 or 32) if dynamic == "all"
             else (3, *s[1:]) for s in shapes]
    with torch.no_grad():
        out_axes = output_axes(wrapped(*inputs), wrapped(*(torch.randn(*s) for s in other)), out_names, axes[0])
    start = time.perf_counter()
    proto = export_to_onnx(wrapped, inputs, input_names=in_names, output_names=out_names, dynamic_axes=axes,
                           exporter=exporter, output_axes=out_axes)
    seconds = time.perf_counter() - start
    raw_nodes = len(proto.graph.node)
    start = time.perf_counter()
    simplified = simplify(proto)
    simplify_s = time.perf_counter() - start
    dims = [[d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in simplified.graph.input]
    kept = all(all(isinstance(d[i], str) for i in a) for d, a in zip(dims, axes))
    session = ort.InferenceSession(simplified.SerializeToString(), providers=["CPUExecutionProvider"])
    feed = {n: np.random.default_rng(1).standard_normal(s).astype(np.float32) for n, s in zip(in_names, other)}
    try:
        got = session.run(None, feed)
        with torch.no_grad():
            ref = wrapped(*(torch.from_numpy(v) for v in feed.values()))
        errors = [float(np.abs(g - r.numpy()).max() / max(np.abs(r.numpy()).max(), 1e-12)) for g, r in zip(got, ref)]
        parity = max(errors)
    except Exception as exc:  # the graph rejects the other shape: a pinned axis
        parity = f"failed: {str(exc).splitlines()[0][:120]}"
    return {"model": name, "exporter": exporter, "dynamic": dynamic, "export_s": round(seconds, 2),
            "simplify_s": round(simplify_s, 2),
            "nodes_raw": raw_nodes, "nodes_simplified": len(simplified.graph.node), "dynamic_axes_kept": kept,
            "parity_other_shape": parity, "fixed_whole_map_pools": fixed_whole_map_pools(simplified)}


def main() -> None:  # noqa: D103
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="resnet50")
    p.add_argument("--input-shape", default="1x3x224x224")
    p.add_argument("--only", default=None, help="substring of the model names to run")
    p.add_argument("--exporters", default="torchscript,dynamo", help="comma-separated (default both)")
    p.add_argument("--dynamic", choices=("all", "batch"), default="all", help="dynamic axes (default all)")
    p.add_argument("--json", dest="json_out", default=None)
    args = p.parse_args()
    torch.set_num_threads(2)
    rows = []
    shape = tuple(int(d) for d in args.input_shape.split("x"))
    for name, model, shapes in models(args.arch, shape):
        if args.only and args.only not in name:
            continue
        for exporter in args.exporters.split(","):
            row = measure(name, model, shapes, exporter, args.dynamic)
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
