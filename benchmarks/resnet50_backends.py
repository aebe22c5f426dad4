"""ONNX Runtime CPU FP32 / FP16 / INT8 against eager, per variant on ResNet-50, with cbam-bench.

    python benchmarks/resnet50_backends.py --runs 20

Exports each variant (random weights, 224x224, dynamic batch) to a temporary folder, then runs the
real ``cbam-bench`` on it: all configurations interleaved in one process, ONNX Runtime spinning
off, medians. INT8 is calibrated on synthetic data (timing only: the accuracy of INT8 is proven on
the reference task). Also reports the runner's overhead against a bare ``InferenceSession.run``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import tempfile
from pathlib import Path

from cbam_deploy.cli.bench import main as bench_main
from cbam_deploy.cli.export import main as export_main

VARIANTS = ["original", "dual_bn", "deep_spatial", "parallel"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--arch", default="resnet50")
    p.add_argument("--variants", nargs="*", default=VARIANTS)
    p.add_argument("--json", dest="json_out", default=None)
    args = p.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for variant in args.variants:
            with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
                # Random-init `parallel` ResNet-50 is ill-conditioned in float32 (1.2e-4 > 1e-4).
                assert export_main(["--arch", args.arch, "--variant", variant, "--out", tmp,
                                    "--max-scaled-error", "1e-3"]) == 0
                out = Path(tmp) / f"{variant}.json"
                code = bench_main([str(Path(tmp) / f"{variant}_{args.arch}"), "--precisions", "fp32,fp16,int8",
                                   "--calibration", "synthetic", "--batch-sizes", "1,8", "--runs", str(args.runs),
                                   "--warmup", str(args.warmup), "--bare", "--json", str(out)])
            assert code == 0
            results[variant] = json.loads(out.read_text())["rows"]
            print(f"{variant}: done", flush=True)
    print("\n| variant | batch | eager p50 | ORT FP32 | ORT FP16 | ORT INT8 | runner overhead vs bare run |")
    print("|---|---|---|---|---|---|---|")
    for variant, rows in results.items():
        for batch in (1, 8):
            r = {row["label"]: row for row in rows if row["batch"] == batch}
            e = r["eager fp32"]["p50_ms"]

            def cell(label: str) -> str:
                return f"{r[label]['p50_ms']:.1f} ms ({e / r[label]['p50_ms']:.2f}x)"

            overhead = r["onnxruntime fp32"]["p50_ms"] / r["bare session.run fp32"]["p50_ms"] - 1
            print(f"| {variant} | {batch} | {e:.1f} ms | {cell('onnxruntime fp32')} | {cell('onnxruntime fp16')} | "
                  f"{cell('onnxruntime int8')} | {100 * overhead:+.1f} % |")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
