"""Load test for cbam-serve: a real Triton Inference Server on loopback, tritonclient clients.

    python benchmarks/serve_load.py --clients 8 --requests 100

Exports the trained reference model (ResNet-mini + original), starts `cbam-serve` with dynamic
batching on and then off (same ports policy, one server at a time), and for each runs `--clients`
concurrent clients x `--requests` requests with mixed batch sizes (1, 2, 4 by default) over HTTP
and over gRPC. Every answer is compared with eager PyTorch (FP32 tolerance); errors and mismatches
are counted, and the run fails if there are any. Reports throughput (images/s), p50 and p99
request latency.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from cbam_deploy.cli.export import main as export_main
from cbam_deploy.compare import tolerance_for
from cbam_deploy.model_dir import ExportedModel
from cbam_deploy.serving.load_test import ServeProcess, run_load

TOLERANCE = tolerance_for("fp32").max_scaled_error


def check(got: np.ndarray, want: np.ndarray) -> str | None:
    error = float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-12))
    return None if got.shape == want.shape and error <= TOLERANCE else f"scaled error {error:.2e}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--requests", type=int, default=100, help="per client")
    p.add_argument("--batch-sizes", default="1,2,4")
    p.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads inside the server")
    p.add_argument("--json", dest="json_out", default=None)
    args = p.parse_args()
    batches = tuple(int(b) for b in args.batch_sizes.split(","))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        assert export_main(["--out", f"{tmp}/models"]) == 0
        model_dir = Path(tmp) / "models" / "original_resnet_mini"
        model = ExportedModel.open(model_dir)
        x = np.random.default_rng(0).standard_normal((64, 3, 64, 64)).astype(np.float32)
        with torch.no_grad():
            expected = {"logits": model.eager_model()(torch.from_numpy(x)).numpy()}
        for batching in ("--dynamic-batching", "--no-dynamic-batching"):
            server = ServeProcess(model_dir, batching, "--threads", str(args.threads), log=f"{tmp}/serve.log").start()
            try:
                for protocol, url in (("http", server.http_url), ("grpc", server.grpc_url)):
                    r = run_load(url, model.name, pool={"input": x}, expected=expected, check=check,
                                 clients=args.clients, requests_per_client=args.requests, batch_sizes=batches,
                                 protocol=protocol)
                    row = {"dynamic_batching": batching == "--dynamic-batching", **r.to_dict()}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
                    if r.errors or r.mismatches:
                        raise SystemExit(f"failures: {(r.errors + r.mismatches)[:3]}")
            finally:
                code = server.stop()
                left = server.leftover_children()
            print(f"server stopped with exit code {code}; child processes left: {left or 'none'}")
    print("\n| dynamic batching | protocol | requests | images/s | p50 ms | p99 ms | errors | mismatches |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {'on' if r['dynamic_batching'] else 'off'} | {r['protocol']} | {r['requests']} | {r['images_per_s']} | "
              f"{r['p50_ms']} | {r['p99_ms']} | {r['errors']} | {r['mismatches']} |")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
