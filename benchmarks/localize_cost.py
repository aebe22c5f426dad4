"""What localization costs next to the parity check it follows (issue: at most 3x, ResNet-50, batch 1).

    python benchmarks/localize_cost.py --variant original --repeats 5 --json localize_cost.json

Both are measured end to end, interleaved, on the same exported graph (folded, simplified, default
rewrites) and the same seeded 1x3x224x224 input:

- parity check: an ONNX Runtime CPU session on the graph, one run, eager once, the outputs compared;
- localization: ``compare.localize.localize`` (a session on a copy with every module's output
  exposed, one run, eager once with forward hooks, every pair compared, the per-block table), on the
  clean graph and on one with a corrupted middle conv (``layer3.1.conv2``; a failing module also
  costs a second eager pass for the error of its inputs).

Medians and minima are reported, each with its ratio to the parity check's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from cbam_deploy.backends.onnxruntime import OnnxRuntimeRunner
from cbam_deploy.api.localize import localize
from cbam_deploy.compare.parity import compare_output
from cbam_deploy.compare.tolerances import tolerance_for
from cbam_deploy.fold import fold_batchnorms
from cbam_deploy.models import create_model
from cbam_deploy.onnx_export.graph import simplify
from cbam_deploy.onnx_export.torch_to_onnx import export_to_onnx
from cbam_deploy.optimize import optimize_graph


def exported(model: torch.nn.Module, exporter: str) -> bytes:
    folded, _ = fold_batchnorms(model)
    proto = export_to_onnx(folded, (torch.randn(2, 3, 224, 224),), input_names=["input"], output_names=["logits"],
                           dynamic_axes=[{0: "batch"}], exporter=exporter)
    return optimize_graph(simplify(proto))[0].SerializeToString()


def corrupted(data: bytes, module: str) -> bytes:
    proto = onnx.load_from_string(data)
    weight = next(t for t in proto.graph.initializer if t.name.endswith(module + ".weight"))
    weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight) * np.float32(1.5), weight.name))
    return proto.SerializeToString()


def parity_check(data: bytes, model: torch.nn.Module, feed: dict[str, np.ndarray]) -> bool:
    with OnnxRuntimeRunner(data, provider="cpu", allow_nonfinite=True) as runner:
        out = runner.infer(feed)["logits"]
    with torch.no_grad():
        ref = model(torch.from_numpy(feed["input"])).numpy()
    return compare_output("logits", out, ref, tolerance_for("fp32"), classifier=True).passed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variant", default="original")
    p.add_argument("--exporter", default="torchscript", choices=("torchscript", "dynamo"))
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads (ONNX Runtime: its default)")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = create_model("resnet50", args.variant).eval()
    clean = exported(model, args.exporter)
    broken = corrupted(clean, "layer3.1.conv2")
    feed = {"input": np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)}
    runs: dict[str, list[float]] = {"parity check": [], "localize (clean)": [], "localize (corrupted)": []}
    tasks = {"parity check": lambda: parity_check(clean, model, feed),
             "localize (clean)": lambda: localize(clean, model, feed, precision="fp32"),
             "localize (corrupted)": lambda: localize(broken, model, feed, precision="fp32")}
    order = list(tasks)
    for i in range(args.repeats):  # interleaved, order rotated: load drifts and after-effects hit all alike
        for label in order[i % 3:] + order[:i % 3]:
            start = time.perf_counter()
            result = tasks[label]()
            runs[label].append(time.perf_counter() - start)
            if label == "localize (corrupted)":
                report = result
    named = report.first.module if report.first else None
    base = statistics.median(runs["parity check"])
    result = {"variant": args.variant, "exporter": args.exporter, "repeats": args.repeats, "named": named,
              "compared_modules": len(report.modules),
              "median_s": {k: round(statistics.median(v), 3) for k, v in runs.items()},
              "ratio_to_parity": {k: round(statistics.median(v) / base, 2) for k, v in runs.items()},
              # On a shared machine the fastest run is the least disturbed one: its ratio too.
              "min_s": {k: round(min(v), 3) for k, v in runs.items()},
              "ratio_of_min": {k: round(min(v) / min(runs["parity check"]), 2) for k, v in runs.items()}}
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
