"""Load test for cbam-serve under mixed traffic: a real Triton Inference Server on loopback,
tritonclient clients, good and malformed requests interleaved.

    python benchmarks/serve_load.py                     # 8 clients x 200 requests, 0/10/30 % malformed
    python benchmarks/serve_load.py --model-dir models/original_resnet_mini --json serve_load.json

Exports the trained reference model (ResNet-mini + original; or serves --model-dir), starts
`cbam-serve` (dynamic batching on), and for each share of malformed requests (NaN, wrong shape,
wrong dtype, wrong input name, batch over the maximum, garbage body, in turn) runs `--clients`
concurrent clients x `--requests` requests over HTTP and over gRPC. Every good answer is compared
with eager PyTorch (scaled error max|got - eager| / max|eager| <= 1e-4). Reports per run: good
requests failed (must be 0), good answers beyond 1e-4 (must be 0), malformed requests answered as
if valid (must be 0), malformed requests refused with something other than 400 / INVALID_ARGUMENT,
images/s and p50/p99 latency of the good requests; the server's RSS (cbam-serve, tritonserver and
the Python stub) at ready, after a warm-up and after --total requests; then SIGTERM to the
cbam-serve PID: exit code, seconds to exit, child processes and temporary files left. Exits 1 when
a must-be-0 count is not 0.
"""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import tempfile
import time
from pathlib import Path

import numpy as np

from cbam_deploy.model_dir import ExportedModel
from cbam_deploy.serving.load_test import run_load
from cbam_deploy.serving.process import ServeProcess

TOLERANCE = 1e-4


def _expected(model_dir: Path, rows: int) -> tuple[dict, dict]:
    import torch

    x = np.random.default_rng(0).standard_normal((rows, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        logits = ExportedModel.open(model_dir).eager_model()(torch.from_numpy(x)).numpy()
    return {"input": x}, {"logits": logits}


def _table(rows: list[dict]) -> str:
    head = ("| protocol | malformed | requests | good | good failed | good > 1e-4 | worst error | malformed | "
            "answered as valid | not 400 | images/s | p50 ms | p99 ms |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        lines.append(f"| {r['protocol']} | {r['malformed_share']:.0%} | {r['requests']} | {r['good']} | "
                     f"{r['good_failed']} | {r['good_mismatches']} | {r['worst_scaled_error']:.1e} | {r['malformed']} | "
                     f"{r['malformed_accepted']} | {r['malformed_not_400']} | {r['images_per_s']} | {r['p50_ms']} | "
                     f"{r['p99_ms']} |")
    return "\n".join(lines)


def _run(args: argparse.Namespace, model_dir: Path, work: Path) -> dict:
    inputs, expected = _expected(model_dir, 64)
    batches = tuple(int(b) for b in args.batch_sizes.split(","))
    shares = [float(s) for s in args.malformed.split(",")]
    server = ServeProcess(model_dir, "--threads", str(args.threads), *shlex.split(args.serve_args), log=work / "serve.log",
                          tmpdir=work / "tmp").start()
    report: dict = {"rss_mib": {"ready": round(server.rss_bytes() / 2**20, 1)}, "runs": []}
    try:
        sent, nan_sent = 0, 0
        warm = run_load(server.http_url, server.name, pool=inputs, expected=expected, clients=args.clients,
                        requests_per_client=args.warmup // args.clients, protocol="http", seed=99)
        sent += warm.requests
        report["rss_mib"]["after_warmup"] = round(server.rss_bytes() / 2**20, 1)
        for share in shares:
            for protocol in ("http", "grpc"):
                r = run_load(server.url(protocol), server.name, pool=inputs, expected=expected, tolerance=TOLERANCE,
                             clients=args.clients, requests_per_client=args.requests, batch_sizes=batches,
                             protocol=protocol, malformed_share=share, seed=int(share * 100))
                sent += r.requests
                nan_sent += sum(v for k, v in r.statuses.items() if k.startswith("nan/"))
                row = r.to_dict()
                report["runs"].append(row)
                print(json.dumps(row), flush=True)
                for problem in (r.errors + r.mismatches + r.accepted)[:3]:
                    print("  problem:", problem, flush=True)
        while sent < args.total:  # top up to --total requests, mixed, before the last RSS reading
            n = min(args.total - sent, args.clients * args.requests)
            r = run_load(server.http_url, server.name, pool=inputs, expected=expected, clients=args.clients,
                         requests_per_client=max(n // args.clients, 1), protocol="http", malformed_share=0.1, seed=7)
            sent += r.requests
            nan_sent += sum(v for k, v in r.statuses.items() if k.startswith("nan/"))
        report["requests_sent"], report["nan_requests_sent"] = sent, nan_sent
        report["rss_mib"][f"after_{sent}"] = round(server.rss_bytes() / 2**20, 1)
    finally:
        t0 = time.monotonic()
        code = server.stop(signal.SIGTERM)
        report["stop"] = {"signal": "SIGTERM", "exit_code": code, "seconds": round(time.monotonic() - t0, 2),
                          "children_left": server.leftover_children(), "temp_files_left": server.leftover_files()}
    report["log_rejection_lines"] = (work / "serve.log").read_text().count("rejected a request:")
    report["log_tracebacks"] = (work / "serve.log").read_text().count("Traceback")
    return report


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-dir", default=None, help="an exported model folder (default: export the reference model)")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--requests", type=int, default=200, help="per client and run")
    p.add_argument("--malformed", default="0,0.1,0.3", help="shares of malformed requests, one run each")
    p.add_argument("--batch-sizes", default="1,2,4")
    p.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads inside the server")
    p.add_argument("--warmup", type=int, default=400, help="requests before the second RSS reading")
    p.add_argument("--total", type=int, default=10_000, help="requests before the last RSS reading")
    p.add_argument("--serve-args", default="", help="more cbam-serve arguments, e.g. '--no-dynamic-batching'")
    p.add_argument("--json", dest="json_out", default=None)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model_dir = Path(args.model_dir) if args.model_dir else None
        if model_dir is None:
            from cbam_deploy.cli.export import main as export_main

            if export_main(["--out", str(work / "models")]) != 0:
                return 1
            model_dir = work / "models" / "original_resnet_mini"
        report = _run(args, model_dir, work)
    print()
    print(_table(report["runs"]))
    print(f"\nserver RSS (MiB): {report['rss_mib']}")
    print(f"stop: {report['stop']}; NaN requests sent: {report.get('nan_requests_sent')}, rejection lines in the "
          f"log: {report['log_rejection_lines']}, tracebacks: {report['log_tracebacks']}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=2) + "\n")
    bad = sum(r["good_failed"] + r["good_mismatches"] + r["malformed_accepted"] for r in report["runs"])
    left = report["stop"]["children_left"] or report["stop"]["temp_files_left"]
    return 1 if bad or report["stop"]["exit_code"] != 0 or left else 0


if __name__ == "__main__":
    raise SystemExit(main())
