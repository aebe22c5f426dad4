"""PyTorch's two ONNX exporters side by side: TorchScript-based (``dynamo=False``) and dynamo.

    python benchmarks/exporter_choice.py --json exporters.json

For every CBAM variant on ResNet-50 (and the plain host) and every example network under
``examples/user_models/``: BatchNorm folded, whole-map pooling made global (what ``cbam-export``
does before exporting), then each exporter with batch, height and width dynamic. Measured per
exporter: export time, node count (raw and after onnxsim), whether the dynamic axes stay dynamic
and hold at another batch size and resolution (parity against eager there), and whether global
pooling stays global (Global*Pool or a Reduce over H, W, never a fixed-size kernel).
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
from cbam_deploy.onnx_export.graph import op_counts, simplify
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


def pooling_global(proto: onnx.ModelProto) -> bool:
    """No AveragePool/MaxPool whose kernel covers a whole traced map (a baked-in global pool)."""
    ops = op_counts(proto)
    return not any(op in ops for op in ("AveragePool", "MaxPool")) or any(
        op in ops for op in ("GlobalAveragePool", "GlobalMaxPool", "ReduceMean", "ReduceMax"))


def measure(name, model, shapes, exporter: str) -> dict:
    folded, _ = fold_batchnorms(model)
    folded, _ = globalize_pooling(folded)
    with torch.no_grad():
        wrapped, out_names = flatten_module(folded, folded(*(torch.randn(*s) for s in shapes)))
    inputs = tuple(torch.randn(2, *s[1:]) for s in shapes)
    in_names = ["input"] if len(shapes) == 1 else [f"input_{i}" for i in range(len(shapes))]
    axes = [{0: "batch", 2: "height", 3: "width"} for _ in shapes]
    other = [(3, s[1], s[2] * 5 // 4 // 32 * 32 or 32, s[3] * 3 // 2 // 32 * 32 or 32) for s in shapes]
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
    dynamic = all(isinstance(d[0], str) and isinstance(d[2], str) and isinstance(d[3], str) for d in dims)
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
    return {"model": name, "exporter": exporter, "export_s": round(seconds, 2), "simplify_s": round(simplify_s, 2),
            "nodes_raw": raw_nodes, "nodes_simplified": len(simplified.graph.node), "dynamic_axes": dynamic,
            "parity_other_shape": parity, "pooling_global": pooling_global(simplified)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="resnet50")
    p.add_argument("--input-shape", default="1x3x224x224")
    p.add_argument("--only", default=None, help="substring of the model names to run")
    p.add_argument("--exporters", default="torchscript,dynamo", help="comma-separated (default both)")
    p.add_argument("--json", dest="json_out", default=None)
    args = p.parse_args()
    torch.set_num_threads(2)
    rows = []
    shape = tuple(int(d) for d in args.input_shape.split("x"))
    for name, model, shapes in models(args.arch, shape):
        if args.only and args.only not in name:
            continue
        for exporter in args.exporters.split(","):
            row = measure(name, model, shapes, exporter)
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
