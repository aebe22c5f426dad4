"""The ablation table: does each CBAM "improvement" pay for itself at deployment?

    python benchmarks/ablation.py --repeats 200

For each variant (shipped reference checkpoints): held-out top-1, parameters, and ONNX Runtime CPU
latency at batch 1 relative to the plain host (same network without attention; random weights,
which do not change latency; its accuracy is reported only if a plain checkpoint is shipped). All models are
exported first, then timed interleaved round-robin in one process (intra-op spinning off, so idle
sessions do not steal cores), medians of ``--repeats`` rounds.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from cbam_deploy.backends.onnxruntime import create_session
from cbam_deploy.cli.export import main as export_main

MODELS = ["none", "original", "dual_bn", "deep_spatial", "parallel"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=200)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--json", dest="json_out", default=None)
    args = p.parse_args()
    rows = {}
    with tempfile.TemporaryDirectory() as out:
        from cbam_deploy.models.spec import REFERENCE_DIR

        for variant in MODELS:
            weights = "reference" if (REFERENCE_DIR / f"resnet_mini_{variant}.pt").is_file() else "random"
            buffer = io.StringIO()
            with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(io.StringIO()):
                code = export_main(["--variant", variant, "--weights", weights, "--num-classes", "5", "--out", out, "--json"])
            if code != 0:
                raise SystemExit(f"export of {variant} failed ({code})")
            report = json.loads(buffer.getvalue())
            accuracy = report.get("heldout_accuracy") or {}
            rows[variant] = {"heldout_top1": accuracy.get("reference_top1"), "onnx_top1": accuracy.get("top1"),
                             "onnx": report["onnx"]}
        sessions = {v: create_session(r["onnx"], threads=args.threads, spinning=False) for v, r in rows.items()}
        x = np.random.default_rng(0).standard_normal((args.batch, 3, 64, 64)).astype(np.float32)
        times: dict[str, list[float]] = {v: [] for v in rows}
        for s in sessions.values():  # warm-up
            for _ in range(20):
                s.run(None, {"input": x})
        for _ in range(args.repeats):
            for v, s in sessions.items():
                start = time.perf_counter()
                s.run(None, {"input": x})
                times[v].append(time.perf_counter() - start)
    from cbam_deploy.models import create_model

    base = statistics.median(times["none"])
    print(f"| variant | held-out top-1 | parameters | ORT CPU batch {args.batch} median | vs plain |")
    print("|---|---|---|---|---|")
    for v, r in rows.items():
        params = sum(p.numel() for p in create_model("resnet_mini", None if v == "none" else v, num_classes=5).parameters())
        med = statistics.median(times[v])
        r.update(parameters=params, median_ms=1000 * med, ratio=med / base)
        top1 = "not trained" if r["heldout_top1"] is None else f"{100 * r['heldout_top1']:.1f}%"
        print(f"| {'plain (none)' if v == 'none' else v} | {top1} | {params:,} | "
              f"{1000 * med:.3f} ms | {med / base:.2f}x |")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
