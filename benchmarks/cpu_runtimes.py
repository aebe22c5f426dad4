"""ONNX Runtime and OpenVINO side by side on the CPU: plain ResNet-50 and the four CBAM variants, in
FP32, BF16 (OpenVINO only: ONNX Runtime's CPU provider has no native bf16) and INT8, with parity of each.

    python benchmarks/cpu_runtimes.py --repeats 15            # the full table (minutes)
    python benchmarks/cpu_runtimes.py --quick                  # resnet_mini, 3 repeats: a smoke run

Every configuration of every model is timed interleaved in ONE process (one call each per round,
``cbam_deploy.bench.time_interleaved``), ONNX Runtime's intra-op spinning off, OpenVINO with one
stream, pinning off and its inference precision set explicitly (f32, or bf16 where asked). Medians,
then ratios: OpenVINO against ONNX Runtime per precision, each runtime's CBAM latency against its own
plain ResNet-50 (the attention overhead), and OpenVINO INT8 against ONNX Runtime FP32.

Models: exported here with random weights (224x224, dynamic batch) unless ``--models-dir`` already
holds ``<variant>_<arch>`` folders. INT8 is the Q/DQ model cbam-validate derives from the FP32 export
(calibrated on synthetic data: timing and parity only; held-out accuracy of INT8 is proven on the
reference task by ``cbam-validate --backends openvino``). Parity: each configuration against eager
PyTorch on one seeded batch, judged by the precision's tolerance (``compare.tolerances``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import platform
import sys
from contextlib import ExitStack
from pathlib import Path

import numpy as np

VARIANTS = ["none", "original", "dual_bn", "deep_spatial", "parallel"]
GOALS = {"original": 1.15, "dual_bn": 1.20, "deep_spatial": 1.20, "parallel": 1.20}  # OpenVINO FP32 overhead


def machine() -> str:
    from cbam_deploy.backends.openvino.loader import describe_environment

    import onnxruntime

    return f"{platform.node()}: {describe_environment()}; ONNX Runtime {onnxruntime.__version__}"


def export_models(arch: str, variants: list[str], root: Path, shape: str) -> dict[str, Path]:
    from cbam_deploy.cli.export import main as export_main

    folders = {}
    for variant in variants:
        folder = root / f"{variant}_{arch}"
        if not (folder / "1" / "model.onnx").is_file():
            with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
                # Random-init `parallel` ResNet-50 is ill-conditioned in float32: a looser export gate.
                code = export_main(["--arch", arch, "--variant", variant, "--weights", "random", "--input-shape",
                                    shape, "--out", str(root), "--name", folder.name, "--max-scaled-error", "1e-3"])
            if code != 0:
                sys.exit(f"cpu_runtimes: exporting {variant} {arch} failed (exit {code})")
        folders[variant] = folder
    return folders


OV_DYNAMIC = "openvino-dynamic"  # OpenVINO with its one dynamic-batch compile (static_shapes=0), as before


def configurations(precisions: list[str], dynamic: bool = False) -> list[tuple[str, str]]:
    """(backend, precision) pairs: bf16 only on OpenVINO; with ``dynamic`` also OpenVINO's dynamic
    compile of the same file beside its static one (the runner's default)."""
    backends = ("onnxruntime-cpu", "openvino", *((OV_DYNAMIC,) if dynamic else ()))
    return [(b, p) for p in precisions for b in backends if not (p == "bf16" and b == "onnxruntime-cpu")]


def open_model(stack: ExitStack, folder: Path, precisions: list[str], threads: int, batch: int, rng,
               dynamic: bool = False):
    """(calls per config, parity per config) for one model folder."""
    from cbam_deploy.api.validate import precision_models
    from cbam_deploy.backends import open_runner
    from cbam_deploy.compare import tolerance_for
    from cbam_deploy.compare.parity import compare_output
    from cbam_deploy.model_dir import ExportedModel

    model = ExportedModel.open(folder)
    shape = (batch, *model.traced_shape[1:])
    calibration = rng.standard_normal((16, *shape[1:])).astype(np.float32)
    data = precision_models(model, precisions, calibration, "synthetic")
    x = rng.standard_normal(shape).astype(np.float32)
    with model.eager_runner() as eager:
        ref = eager.infer({model.input_name: x})[model.output_names[0]]
    calls, parity = {}, {}
    for backend, precision in configurations(precisions, dynamic):
        options = ({"threads": threads, "precision": "bf16" if precision == "bf16" else "fp32"}
                   if backend.startswith("openvino") else {"threads": threads, "spinning": False})
        if backend == OV_DYNAMIC:
            options["static_shapes"] = 0
        runner = stack.enter_context(open_runner(backend.removesuffix("-dynamic"), data[precision], **options))
        feed = {model.input_name: x}
        out = runner.infer(feed)[model.output_names[0]]
        result = compare_output("logits", out.astype(np.float32), ref, tolerance_for(precision), classifier=True)
        parity[backend, precision] = {"scaled_error": result.scaled_error, "passed": result.passed,
                                      "top1_agreement": result.top1_agreement}
        calls[backend, precision] = lambda r=runner, f=feed: r.infer(f)
    return calls, parity


def run(args: argparse.Namespace) -> dict:
    from cbam_deploy.bench import time_interleaved

    import torch

    torch.set_num_threads(args.threads)
    root = Path(args.models_dir)
    root.mkdir(parents=True, exist_ok=True)
    folders = export_models(args.arch, args.variants, root, args.input_shape)
    rng = np.random.default_rng(0)
    with ExitStack() as stack:
        calls, parity = {}, {}
        for variant, folder in folders.items():
            model_calls, model_parity = open_model(stack, folder, args.precisions, args.threads, args.batch, rng,
                                                   args.compare_dynamic)
            calls.update({(variant, *k): v for k, v in model_calls.items()})
            parity.update({(variant, *k): v for k, v in model_parity.items()})
            print(f"opened {variant}: {', '.join(f'{b} {p}' for b, p in model_calls)}", file=sys.stderr, flush=True)
        labels = {key: " ".join(key) for key in calls}
        timed = time_interleaved({labels[k]: c for k, c in calls.items()}, batch=args.batch, warmup=args.warmup,
                                 runs=args.repeats)
    medians = {key: timed[labels[key]].p50 * 1e3 for key in calls}
    return {"machine": machine(), "threads": args.threads, "batch": args.batch, "repeats": args.repeats,
            "arch": args.arch, "rows": [{"variant": v, "backend": b, "precision": p, "median_ms": medians[v, b, p],
                                         **parity[v, b, p]} for (v, b, p) in calls]}


_START = """
import sys, time
t0 = time.perf_counter()
from cbam_deploy.backends import open_runner
runner = open_runner("openvino", sys.argv[1], precision=sys.argv[2], threads=2, cache_dir=sys.argv[3])
with runner:
    print(time.perf_counter() - t0, runner.cache_hit)
"""


def startup(folder: Path, precision: str, cache: Path) -> list[tuple[float, bool]]:
    """Seconds from a fresh process's first import to a compiled model: empty cache, then cached."""
    import shutil
    import subprocess

    shutil.rmtree(cache, ignore_errors=True)
    out = []
    for _ in range(2):
        line = subprocess.run([sys.executable, "-c", _START, str(folder / "1" / "model.onnx"), precision, str(cache)],
                              check=True, capture_output=True, text=True).stdout.split()
        out.append((float(line[0]), line[1] == "True"))
    return out


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def report(result: dict) -> str:
    med = {(r["variant"], r["backend"], r["precision"]): r["median_ms"] for r in result["rows"]}
    par = {(r["variant"], r["backend"], r["precision"]): r for r in result["rows"]}
    variants = list(dict.fromkeys(r["variant"] for r in result["rows"]))
    precisions = list(dict.fromkeys(r["precision"] for r in result["rows"]))
    lines = [f"Machine: {result['machine']}", f"{result['arch']}, batch {result['batch']}, {result['threads']} threads, "
             f"medians of {result['repeats']} interleaved rounds (one process, ONNX Runtime spinning off).", "",
             "| model | precision | ONNX Runtime | OpenVINO | OpenVINO / ORT speed | parity ORT / OpenVINO (scaled error) |",
             "|---|---|---|---|---|---|"]
    for v in variants:
        for p in precisions:
            ort, ov = med.get((v, "onnxruntime-cpu", p)), med.get((v, "openvino", p))

            def cell(b: str) -> str:
                r = par.get((v, b, p))
                return "-" if r is None else f"{'pass' if r['passed'] else 'FAIL'} {r['scaled_error']:.1e}"

            lines.append(f"| {v} | {p} | {f'{ort:.1f} ms' if ort else '-'} | {f'{ov:.1f} ms' if ov else '-'} | "
                         f"{_ratio(ort, ov)} | {cell('onnxruntime-cpu')} / {cell('openvino')} |")
    if "none" in variants:
        lines += ["", "Attention overhead (CBAM median / plain median, same runtime and precision):", "",
                  "| model | precision | ONNX Runtime | OpenVINO | OpenVINO goal (FP32) |", "|---|---|---|---|---|"]
        for v in (v for v in variants if v != "none"):
            for p in precisions:
                ort = _ratio(med.get((v, "onnxruntime-cpu", p)), med.get(("none", "onnxruntime-cpu", p)))
                ov_value = med.get((v, "openvino", p))
                ov = _ratio(ov_value, med.get(("none", "openvino", p)))
                goal = ""
                if p == "fp32" and v in GOALS and ov != "-":
                    ok = ov_value / med["none", "openvino", p] <= GOALS[v]
                    goal = f"<= {GOALS[v]:.2f}x: {'met' if ok else 'NOT met'}"
                lines.append(f"| {v} | {p} | {ort} | {ov} | {goal} |")
    if any(r["backend"] == OV_DYNAMIC for r in result["rows"]):
        lines += ["", "OpenVINO compiled static at the batch's shape (the runner's default) against its dynamic-batch "
                      "compile of the same file:", ""]
        for v in variants:
            for p in precisions:
                static, dynamic = med.get((v, "openvino", p)), med.get((v, OV_DYNAMIC, p))
                if static and dynamic:
                    lines.append(f"- {v} {p}: {dynamic:.1f} ms dynamic -> {static:.1f} ms static ({_ratio(dynamic, static)})")
    if "int8" in precisions and "fp32" in precisions:
        lines += ["", "OpenVINO INT8 against ONNX Runtime FP32 (goal >= 3x, within the INT8 parity gate):", ""]
        for v in variants:
            ov8, ort32 = med.get((v, "openvino", "int8")), med.get((v, "onnxruntime-cpu", "fp32"))
            if ov8 and ort32:
                ok = ort32 / ov8 >= 3 and par[v, "openvino", "int8"]["passed"]
                lines.append(f"- {v}: {ort32 / ov8:.2f}x ({ort32:.1f} ms -> {ov8:.1f} ms): {'met' if ok else 'NOT met'}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="resnet50")
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated; 'none' is the plain host")
    p.add_argument("--variant", default=None, help="a single variant (e.g. none for plain ResNet-50)")
    p.add_argument("--precisions", default="fp32,bf16,int8")
    p.add_argument("--repeats", type=int, default=15, help="timed rounds (medians over these)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--input-shape", default="1x3x224x224")
    p.add_argument("--models-dir", default="runs/cpu_runtimes/models", help="exports are made here when missing")
    p.add_argument("--quick", action="store_true", help="resnet_mini (64x64), 3 repeats: checks the script runs")
    p.add_argument("--json-out", default=None)
    p.add_argument("--compare-dynamic", action="store_true",
                   help="also time OpenVINO's dynamic-batch compile of each file beside the static one")
    p.add_argument("--startup", action="store_true", help="instead: OpenVINO start time (fresh process, read + compile) "
                                                           "with an empty model cache, then with it filled")
    args = p.parse_args(argv)
    args.variants = [args.variant] if args.variant else args.variants.split(",")
    args.precisions = args.precisions.split(",")
    if args.quick:
        args.arch, args.input_shape, args.repeats, args.warmup = "resnet_mini", "1x3x64x64", 3, 1
    if args.repeats <= 0 or args.threads <= 0 or args.batch <= 0 or args.warmup < 0:
        p.error("--repeats, --threads and --batch must be positive, --warmup not negative")
    if args.startup:
        root = Path(args.models_dir)
        folders = export_models(args.arch, args.variants, root, args.input_shape)
        for variant, folder in folders.items():
            for precision in [p for p in args.precisions if p in ("fp32", "bf16")]:
                (cold, hit0), (warm, hit1) = startup(folder, precision, root / ".ov-cache-startup")
                print(f"{variant} {args.arch} {precision}: first start {cold:.2f} s (cache hit {hit0}), "
                      f"second {warm:.2f} s (cache hit {hit1}): {cold / warm:.1f}x faster")
        return 0
    result = run(args)
    print(report(result))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
