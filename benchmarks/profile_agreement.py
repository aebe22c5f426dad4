"""Does ``cbam-bench --profile`` attribute the attention's real cost? And what does a profile cost?

    python benchmarks/profile_agreement.py               # ResNet-50, the four variants + plain, 40 rounds
    python benchmarks/profile_agreement.py --quick       # 15 rounds
    python benchmarks/profile_agreement.py --cost        # also: wall time of a profile vs a plain cbam-bench run

For each CBAM variant of ResNet-50 (``cbam-export --arch resnet50 --variant V``, reused from --exports
when already there) one profile runs, and in the same interleaved rounds (ONNX Runtime intra-op
spinning off) three more sessions are timed: the export with its attention bypassed in the graph
(the ablation ``--ablation`` does), and the plain ResNet-50 export (``--variant none``). Three
attention shares side by side:

- attributed: what the profile charges to the attention blocks, over the unprofiled latency;
- ablation: ``1 - t(attention bypassed) / t(CBAM)``;
- plain vs CBAM: ``1 - t(plain ResNet-50) / t(CBAM)``.

Figures on a loaded machine move by several points between runs; the machine's load average is printed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import time
from pathlib import Path

VARIANTS = ["original", "dual_bn", "deep_spatial", "parallel"]


def _export(variant: str, out: Path) -> Path:
    from cbam_deploy.cli.export import main as export_main

    onnx_path = out / f"resnet50_{variant}" / "1" / "model.onnx"
    if not onnx_path.is_file():
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            code = export_main(["--arch", "resnet50", "--variant", variant, "--out", str(out),
                                "--name", f"resnet50_{variant}"])
        if code != 0:
            raise SystemExit(f"export of resnet50 {variant} failed ({code})")
    return onnx_path.parent.parent


def _machine() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cost(folder: Path, threads: int) -> dict[str, float]:
    """Wall time of a default plain cbam-bench run (ONNX Runtime FP32, batch 1, no eager) and of a
    default profile, each from opening the model to the result."""
    from cbam_deploy.api.bench import benchmark, profile

    t0 = time.perf_counter()
    benchmark(folder, eager=False, batch_sizes=[1], threads=threads)
    bench_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    profile(folder, threads=threads)
    profile_s = time.perf_counter() - t0
    return {"bench_s": bench_s, "profile_s": profile_s, "ratio": profile_s / bench_s}


def _parts(report) -> dict[str, float]:
    """The attention's ms by what runs: its own channel/spatial math, the gate Muls, reorders/copies, un-fused ops."""
    out = {"channel": 0.0, "spatial": 0.0, "gate Mul": 0.0, "conversions": 0.0, "un-fused Add/ReLU": 0.0}
    for n in report.nodes:
        if not n["block"]:
            continue
        if n["rule"] == "conversion":
            out["conversions"] += n["ms"]
        elif n["rule"] == "unfused epilogue":
            out["un-fused Add/ReLU"] += n["ms"]
        elif n["part"] in ("channel", "spatial"):
            out[n["part"]] += n["ms"]
        else:
            out["gate Mul"] += n["ms"]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=40, help="interleaved rounds per variant (default 40)")
    p.add_argument("--quick", action="store_true", help="15 rounds")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--exports", default="runs/profile_agreement", help="folder for (reused) exports")
    p.add_argument("--cost", action="store_true", help="also time a profile against a plain cbam-bench run")
    p.add_argument("--openvino", action="store_true",
                   help="also profile on OpenVINO (CPU, f32) and print the attention's parts side by side")
    p.add_argument("--json", dest="json_out", default=None)
    args = p.parse_args()
    from cbam_deploy.api.bench import profile

    runs = 15 if args.quick else args.repeats
    out = Path(args.exports)
    plain = _export("none", out) / "1" / "model.onnx"
    rows = {}
    print(f"machine: {_machine()}, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.2f} at start; {args.threads} threads, {runs} rounds, spinning off")
    for variant in args.variants.split(","):
        folder = _export(variant, out)
        report = profile(folder, threads=args.threads, runs=runs, ablation="network",
                         also_time={"plain resnet50": str(plain)})
        a = report.ablation
        plain_share = 1 - a["timed_ms"]["plain resnet50"] / a["full_ms"]
        rows[variant] = {"cbam_ms": a["full_ms"], "bypassed_ms": a["without_ms"],
                         "plain_ms": a["timed_ms"]["plain resnet50"], "attributed": report.attention_share,
                         "ablation": a["measured_share"], "plain_vs_cbam": plain_share,
                         "attributed_share_of_latency": report.attributed_share,
                         "load_average": os.getloadavg()[0]}
        rows[variant]["parts"] = {"onnxruntime": _parts(report)}
        if args.openvino:
            ov = profile(folder, backend="openvino", threads=args.threads, runs=runs, ablation="network")
            rows[variant]["parts"]["openvino"] = _parts(ov)
            rows[variant]["openvino"] = {"ms": ov.e2e_ms, "attributed": ov.attention_share,
                                         "ablation": ov.ablation["measured_share"]}
        if args.cost:
            rows[variant]["cost"] = _cost(folder, args.threads)
        r = rows[variant]
        print(f"{variant:13s} CBAM {r['cbam_ms']:7.2f} ms  bypassed {r['bypassed_ms']:7.2f}  plain {r['plain_ms']:7.2f}  "
              f"attention share: attributed {100 * r['attributed']:5.1f} %  ablation {100 * r['ablation']:5.1f} %  "
              f"plain-vs-CBAM {100 * r['plain_vs_cbam']:5.1f} %  (attributed - plain-vs-CBAM "
              f"{100 * (r['attributed'] - r['plain_vs_cbam']):+.1f} pts; profile covers "
              f"{100 * r['attributed_share_of_latency']:.0f} %)" + (
                  f"  cost: profile {r['cost']['profile_s']:.1f} s vs bench {r['cost']['bench_s']:.1f} s "
                  f"= {r['cost']['ratio']:.2f}x" if "cost" in r else ""))
    print(f"load average at end {os.getloadavg()[0]:.2f}")
    print("attention parts, ms (gating split into the gate Muls, the reorders and the un-fused Add/ReLU it causes):")
    for variant, r in rows.items():
        for backend, parts in r["parts"].items():
            extra = (f"  [{backend}: {r['openvino']['ms']:.1f} ms, attention attributed "
                     f"{100 * r['openvino']['attributed']:.1f} %, ablation {100 * r['openvino']['ablation']:.1f} %]"
                     if backend == "openvino" else "")
            print(f"  {variant:13s} {backend:12s} " + "  ".join(f"{k} {v:6.2f}" for k, v in parts.items()) + extra)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"runs": runs, "threads": args.threads, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
