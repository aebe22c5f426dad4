"""What the CBAM-aware graph rewrites buy in ONNX Runtime CPU, side by side in one run.

    python benchmarks/graph_optimization.py --runs 20 --json graph_optimization.json

For each variant on ResNet-50 (224x224, random weights: latency does not depend on them), timed
interleaved round-robin in one process with intra-op spinning off, at batch 1 and 8:
  (a) plain ResNet-50 (our export, no attention),
  (b) naive: torch's TorchScript exporter (``dynamo=False``, opset 17), no folding, no simplification,
  (c) ours without the rewrites (``--no-optimize``),
  (d) ours with the default rewrites (``--optimize``),
  and (c) plus each single rewrite, to show what each one is worth.
Ratios are against (a) in the same round. Also session-creation time with and without the saved
ONNX Runtime-optimized model (``OnnxRuntimeRunner(optimized_cache=...)``), medians.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch

from cbam_deploy.backends.onnxruntime import create_session
from cbam_deploy.bench import time_interleaved
from cbam_deploy.models import create_model
from cbam_deploy import export
from cbam_deploy.optimize import DEFAULT_REWRITES, REWRITES, optimize_graph

VARIANTS = ["original", "dual_bn", "deep_spatial", "parallel"]


def naive_export(model: torch.nn.Module, x: torch.Tensor) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), buffer, dynamo=False, opset_version=17, input_names=["input"],
                          output_names=["logits"], dynamic_axes={"input": {0: "batch"}})
    return buffer.getvalue()


def ours(model: torch.nn.Module, x: torch.Tensor, out: str, name: str) -> onnx.ModelProto:
    """Our export without rewrites (parity against eager checked by the pipeline)."""
    report = export(model, (x,), name=name, out=out, classifier=True, optimize=False,
                          max_scaled_error=1e-2)  # random-init parallel ResNet-50 is ill-conditioned in float32 (docs/guides/export.md)
    return onnx.load(str(report.onnx_path))


def cold_start(model: bytes, cache: Path, repeats: int) -> dict[str, float]:
    """Median session creation: full optimization at load vs loading the saved optimized model."""
    from cbam_deploy.backends.onnxruntime import OnnxRuntimeRunner

    with OnnxRuntimeRunner(model, optimized_cache=cache):  # writes the cache
        pass
    plain, cached = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        create_session(model, threads=2, spinning=False)
        plain.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        with OnnxRuntimeRunner(model, optimized_cache=cache, threads=2, spinning=False):
            pass
        cached.append(time.perf_counter() - t0)
    return {"optimize_at_load_ms": 1000 * statistics.median(plain), "saved_optimized_ms": 1000 * statistics.median(cached)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch-sizes", default="1,8")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--no-single-rewrites", dest="singles", action="store_false",
                   help="skip timing each rewrite on its own")
    p.add_argument("--json", dest="json_out", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    batches = [int(b) for b in args.batch_sizes.split(",")]
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as out:
        x = torch.randn(1, 3, args.size, args.size)
        plain = ours(create_model("resnet50", None).eval(), x, out, "plain").SerializeToString()
        for variant in args.variants.split(","):
            torch.manual_seed(0)
            model = create_model("resnet50", variant).eval()
            configs = {"plain": plain, "naive": naive_export(model, x)}
            base = ours(model, x, out, variant)
            configs["ours"] = base.SerializeToString()
            optimized, report = optimize_graph(base, DEFAULT_REWRITES)
            configs["ours+rewrites"] = optimized.SerializeToString()
            if args.singles:
                for name in REWRITES:
                    single, single_report = optimize_graph(base, [name])
                    if single_report.applied[name]:
                        configs[f"ours+{name}"] = single.SerializeToString()
            sessions = {k: create_session(m, threads=args.threads, spinning=False) for k, m in configs.items()}
            check = np.random.default_rng(1).standard_normal((2, 3, args.size, args.size)).astype(np.float32)
            ref = sessions["ours"].run(None, {"input": check})[0]
            got = sessions["ours+rewrites"].run(None, {"input": check})[0]
            row = {"rewrites": report.applied, "nodes": {k: len(onnx.load_from_string(m).graph.node) for k, m in configs.items()},
                   "rewritten_vs_unrewritten_scaled_error": float(np.abs(got - ref).max() / np.abs(ref).max()),
                   "timings": {}}
            for batch in batches:
                feed = {"input": np.random.default_rng(0).standard_normal((batch, 3, args.size, args.size)).astype(np.float32)}
                calls = {k: (lambda s=s: s.run(None, feed)) for k, s in sessions.items()}
                timings = time_interleaved(calls, batch=batch, warmup=args.warmup, runs=args.runs)
                plain_p50 = timings["plain"].p50
                row["timings"][batch] = {k: {"p50_ms": 1000 * t.p50, "vs_plain": t.p50 / plain_p50} for k, t in timings.items()}
                print(f"{variant} batch {batch}: " + ", ".join(f"{k} {1000 * t.p50:.1f} ms ({t.p50 / plain_p50:.2f}x)"
                                                             for k, t in timings.items()), flush=True)
            with tempfile.TemporaryDirectory() as cache_dir:
                row["session_creation"] = cold_start(configs["ours+rewrites"], Path(cache_dir) / "model.ort.onnx", 5)
            print(f"{variant} session creation: {row['session_creation']}", flush=True)
            results[variant] = row
    print()
    for batch in batches:
        cols = ["naive", "ours", "ours+rewrites"]
        print(f"| variant (batch {batch}) | plain ms | " + " | ".join(f"{c} ms (vs plain)" for c in cols) + " |")
        print("|---|---|" + "---|" * len(cols))
        for variant, row in results.items():
            t = row["timings"][batch]
            print(f"| {variant} | {t['plain']['p50_ms']:.1f} | "
                  + " | ".join(f"{t[c]['p50_ms']:.1f} ({t[c]['vs_plain']:.2f}x)" for c in cols) + " |")
        print()
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
