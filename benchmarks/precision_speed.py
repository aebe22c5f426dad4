"""INT8 per target: speed on ONNX Runtime CPU (CBAM ResNet-50) and accuracy on the reference task.

    python benchmarks/precision_speed.py --repeats 15          # the four variants, ~15 min on 2 cores
    python benchmarks/precision_speed.py --quick               # original only, 5 repeats, minmax only

1. Speed: each CBAM variant on ResNet-50 (random weights: latency does not depend on them), exported
   FP32 by cbam-export's pipeline, then FP16 and INT8 in each target's flavor (u8s8: uint8
   activations, int8 per-channel weights, attention kept float, as --target onnxruntime-cpu writes;
   s8s8: symmetric, as --target tensorrt writes), all timed on ONNX Runtime CPU at batch 1, interleaved
   round-robin in one process, intra-op spinning off, medians of --repeats rounds, ratios to FP32.
   With the ``openvino`` package installed, the same FP32 and INT8 files are also timed on OpenVINO
   (CPU, latency hint, inference precision f32 so that FP32 is not silently bf16): that chooses
   --target openvino's flavor.
2. Accuracy: the reference task (resnet_mini, shipped checkpoints, 1000 held-out images) for each
   flavor and calibration method: held-out top-1, its drop from FP32, top-1 agreement with FP32.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from cbam_deploy.options import FLAVOR_CALIBRATION_METHOD

VARIANTS = ["original", "dual_bn", "deep_spatial", "parallel"]
FLAVORS = ["u8s8", "s8s8"]
METHODS = ["minmax", "entropy", "percentile"]


def machine() -> str:
    import os

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    return f"{cpu}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start"


def export_fp32(arch: str, variant: str, out: Path, weights: str) -> tuple[Path, object]:
    from cbam_deploy.api.export import BuiltinSource, ExportOptions, export_source

    report = export_source(BuiltinSource(arch=arch, variant=variant, weights=weights),
                           ExportOptions(out=out, name=f"{variant}_{arch}", precision="fp32", force=True))
    return report.onnx_path, report


def int8(onnx_path: Path, calibration: np.ndarray, flavor: str, method: str) -> bytes:
    import onnx

    from cbam_deploy.precision import quantize_int8

    model, _ = quantize_int8(onnx.load(str(onnx_path)), calibration, calibration_label="benchmark", flavor=flavor,
                             method=method)
    return model.SerializeToString()


def fp16(onnx_path: Path) -> bytes:
    import onnx

    from cbam_deploy.precision import convert_to_fp16

    return convert_to_fp16(onnx.load(str(onnx_path)))[0].SerializeToString()


def openvino_calls(models: dict[str, bytes], x: np.ndarray, threads: int, folder: Path) -> dict:
    """OpenVINO CPU compiled models (when the package is installed), FP32 and INT8 only."""
    try:
        import openvino as ov
    except ImportError:
        return {}
    core = ov.Core()
    calls = {}
    for label, data in models.items():
        if "fp16" in label:
            continue
        path = folder / f"openvino_{label.replace(' ', '_')}.onnx"
        path.write_bytes(data)
        compiled = core.compile_model(core.read_model(str(path)), "CPU", {
            "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32"})
        request = compiled.create_infer_request()
        calls[f"openvino {label}"] = lambda r=request: r.infer({0: x})
    return calls


def time_speed(args) -> dict:
    from cbam_deploy.backends.onnxruntime import create_session

    rows = {}
    rng = np.random.default_rng(0)
    calibration = rng.standard_normal((16, 3, 224, 224)).astype(np.float32)
    x = rng.standard_normal((1, 3, 224, 224)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        for variant in args.variants:
            t0 = time.perf_counter()
            path, _ = export_fp32("resnet50", variant, Path(tmp), "random")
            models = {"fp32": path.read_bytes(), "fp16": fp16(path)}
            for flavor in FLAVORS:
                models[f"int8 {flavor}"] = int8(path, calibration, flavor, FLAVOR_CALIBRATION_METHOD[flavor])
            print(f"[{variant}] exported and quantized in {time.perf_counter() - t0:.0f}s", flush=True)
            sessions = {k: create_session(v, threads=args.threads, spinning=False) for k, v in models.items()}
            calls = {f"onnxruntime {k}": (lambda s=s: s.run(None, {"input": x})) for k, s in sessions.items()}
            if not args.no_openvino:
                calls.update(openvino_calls(models, x, args.threads, Path(tmp)))
            rows[variant] = interleave(calls, args.repeats)
            base = rows[variant]["onnxruntime fp32"]
            print(f"[{variant}] " + ", ".join(f"{k} {v * 1e3:.1f} ms ({base / v:.2f}x)" for k, v in rows[variant].items()),
                  flush=True)
    return rows


def interleave(calls: dict, repeats: int) -> dict[str, float]:
    for call in calls.values():
        for _ in range(3):
            call()
    samples: dict[str, list[float]] = {k: [] for k in calls}
    for _ in range(repeats):
        for k, call in calls.items():
            start = time.perf_counter()
            call()
            samples[k].append(time.perf_counter() - start)
    return {k: statistics.median(v) for k, v in samples.items()}


def accuracy(args) -> dict:
    from cbam_deploy.backends.onnxruntime import create_session
    from cbam_deploy.models.hosts import REFERENCE_MEAN, REFERENCE_STD
    from cbam_deploy.precision.calibration import REFERENCE, load_calibration
    from cbam_deploy.reference.evaluate import heldout_batch

    x, labels = heldout_batch(1000)
    calibration, _, _ = load_calibration(REFERENCE, input_shape=(1, 3, 64, 64), mean=REFERENCE_MEAN, std=REFERENCE_STD,
                                         reference_task=True)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for variant in args.accuracy_variants:
            path, _ = export_fp32("resnet_mini", variant, Path(tmp), "reference")
            reference = create_session(str(path), threads=args.threads, spinning=False).run(None, {"input": x})[0]
            fp32_top1 = float((reference.argmax(1) == labels).mean())
            rows[variant] = {"fp32": {"top1": fp32_top1}}
            for flavor in FLAVORS:
                for method in args.methods:
                    model = int8(path, calibration, flavor, method)
                    logits = create_session(model, threads=args.threads, spinning=False).run(None, {"input": x})[0]
                    top1 = float((logits.argmax(1) == labels).mean())
                    rows[variant][f"{flavor} {method}"] = {
                        "top1": top1, "drop_points": 100 * (fp32_top1 - top1),
                        "agreement": float((logits.argmax(1) == reference.argmax(1)).mean())}
                    r = rows[variant][f"{flavor} {method}"]
                    print(f"[{variant}] int8 {flavor} {method}: top-1 {100 * top1:.1f}% (fp32 {100 * fp32_top1:.1f}%, "
                          f"drop {r['drop_points']:.1f} pt), agreement {100 * r['agreement']:.1f}%", flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=15, help="interleaved rounds per configuration (medians)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="original only, 5 repeats, every flavor, minmax only")
    p.add_argument("--no-openvino", action="store_true", help="time ONNX Runtime only")
    p.add_argument("--skip-speed", action="store_true")
    p.add_argument("--skip-accuracy", action="store_true")
    p.add_argument("--variants", default=None, help=f"comma-separated subset of {','.join(VARIANTS)}")
    p.add_argument("--json", dest="json_out", default=None)
    args = p.parse_args()
    chosen = [v.strip() for v in args.variants.split(",")] if args.variants else None
    if chosen and any(v not in VARIANTS for v in chosen):
        p.error(f"--variants: choose from {', '.join(VARIANTS)}")
    args.variants = chosen or (["original"] if args.quick else VARIANTS)
    args.accuracy_variants = args.variants
    args.methods = ["minmax"] if args.quick else METHODS
    if args.quick:
        args.repeats = min(args.repeats, 5)
    import onnxruntime

    print(f"machine: {machine()}; ONNX Runtime {onnxruntime.__version__}", flush=True)
    result = {"machine": machine(), "onnxruntime": onnxruntime.__version__, "repeats": args.repeats}
    if not args.skip_speed:
        result["speed_ms"] = {v: {k: t * 1e3 for k, t in r.items()} for v, r in time_speed(args).items()}
    if not args.skip_accuracy:
        result["reference_task"] = accuracy(args)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
