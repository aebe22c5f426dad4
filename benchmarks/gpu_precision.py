"""ONNX Runtime CUDA: FP16 and INT8 against FP32 on CBAM ResNet-50, batch 1 and 8, with CUDA graphs
and the NHWC layout option tried, and parity of each against eager PyTorch (CPU, FP32).

    python benchmarks/gpu_precision.py --repeats 50            # on a machine with an NVIDIA GPU
    python benchmarks/gpu_precision.py --quick                 # original only, batch 1, 20 repeats

NOT RUN YET: no GPU was lent when it was written; its first run on a GPU is what gives its figures.

Per variant: export FP32 (cbam-export's pipeline, random weights), FP16 (attention kept FP32) and
INT8 s8s8 (the flavor --target onnxruntime-cuda writes: symmetric, zero points 0; the CUDA provider
runs Q/DQ nodes but not integer convolutions, so INT8 is not expected to be fast there: the
TensorRT provider or cbam-build is the INT8 path on a GPU). Each runs on the CUDA provider in four
settings (plain, prefer_nhwc, enable_cuda_graph, both), timed interleaved round-robin in one process
with I/O binding (inputs and outputs on the GPU, which CUDA graphs need), medians and ratios to
FP32 plain. Parity: the outputs on the benchmark's inputs against eager's (max scaled error,
cosine, top-1 agreement), judged with the precision's table tolerance.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

SETTINGS = {"plain": {}, "nhwc": {"prefer_nhwc": "1"}, "cuda graph": {"enable_cuda_graph": "1"},
            "nhwc + cuda graph": {"prefer_nhwc": "1", "enable_cuda_graph": "1"}}


def models_for(variant: str, folder: Path) -> tuple[dict[str, bytes], object]:
    import onnx

    from cbam_deploy.api.export import BuiltinSource, ExportOptions, export_source
    from cbam_deploy.precision import convert_to_fp16, quantize_int8

    report = export_source(BuiltinSource(arch="resnet50", variant=variant, weights="random"),
                           ExportOptions(out=folder, name=variant, precision="fp32", force=True))
    fp32 = onnx.load(str(report.onnx_path))
    calibration = np.random.default_rng(0).standard_normal((16, 3, 224, 224)).astype(np.float32)
    return {"fp32": fp32.SerializeToString(), "fp16": convert_to_fp16(fp32)[0].SerializeToString(),
            "int8 (s8s8)": quantize_int8(fp32, calibration, calibration_label="gaussian", flavor="s8s8")[0]
            .SerializeToString()}, report


class Bound:
    """One CUDA session with its input and output bound on the GPU (what CUDA graphs replay)."""

    def __init__(self, data: bytes, options: dict[str, str], x: np.ndarray) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(data, so, providers=[("CUDAExecutionProvider", options)])
        if self.session.get_providers()[0] != "CUDAExecutionProvider":
            raise SystemExit("the CUDA provider is not available: " + ", ".join(self.session.get_providers()))
        out = self.session.get_outputs()[0]
        self.x = ort.OrtValue.ortvalue_from_numpy(x, "cuda", 0)
        self.y = ort.OrtValue.ortvalue_from_shape_and_type((x.shape[0], 1000), np.float32, "cuda", 0)
        self.binding = self.session.io_binding()
        self.binding.bind_ortvalue_input(self.session.get_inputs()[0].name, self.x)
        self.binding.bind_ortvalue_output(out.name, self.y)

    def __call__(self) -> None:
        self.session.run_with_iobinding(self.binding)

    def output(self) -> np.ndarray:
        self()
        return self.y.numpy()


def parity(got: np.ndarray, ref: np.ndarray, precision: str) -> str:
    from cbam_deploy.compare import tolerance_for

    tol = tolerance_for(precision.split(" ")[0])
    scaled = float(np.abs(got - ref).max() / np.abs(ref).max())
    cosine = float((got * ref).sum() / (np.linalg.norm(got) * np.linalg.norm(ref)))
    agree = float((got.argmax(1) == ref.argmax(1)).mean())
    ok = np.isfinite(got).all() and scaled <= tol.max_scaled_error and cosine >= tol.min_cosine
    return f"scaled {scaled:.2e}, cosine {cosine:.6f}, top-1 agree {agree:.3f}: {'pass' if ok else 'FAIL'}"


def run_variant(variant: str, batches: list[int], repeats: int, folder: Path) -> None:
    import torch

    from cbam_deploy.model_dir import ExportedModel

    models, report = models_for(variant, folder)
    for batch in batches:
        x = np.random.default_rng(batch).standard_normal((batch, 3, 224, 224)).astype(np.float32)
        with ExportedModel.open(report.model_dir).eager_runner() as reference:
            ref = next(iter(reference.infer({"input": x}).values()))
        calls, lines = {}, []
        for precision, data in models.items():
            for setting, options in SETTINGS.items():
                label = f"{precision} {setting}"
                try:
                    bound = Bound(data, options, x)
                    lines.append(f"  parity {label}: {parity(bound.output(), ref, precision)}")
                    calls[label] = bound
                except Exception as exc:  # a setting this ORT build refuses is reported, not hidden
                    lines.append(f"  {label}: could not run ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})")
        for call in calls.values():
            for _ in range(5):
                call()
        samples: dict[str, list[float]] = {k: [] for k in calls}
        for _ in range(repeats):
            for k, call in calls.items():
                start = time.perf_counter()
                call()
                samples[k].append(time.perf_counter() - start)
        base = statistics.median(samples["fp32 plain"]) if "fp32 plain" in samples else None
        print(f"[{variant}] batch {batch} (torch {torch.__version__}):")
        for k, v in samples.items():
            med = statistics.median(v)
            print(f"  {k}: {med * 1e3:.2f} ms" + (f" ({base / med:.2f}x fp32 plain)" if base else ""))
        print("\n".join(lines), flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=50)
    p.add_argument("--quick", action="store_true", help="original only, batch 1, 20 repeats")
    args = p.parse_args()
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise SystemExit("gpu_precision.py: error: ONNX Runtime has no CUDA provider here "
                         f"({', '.join(ort.get_available_providers())}); run it on a GPU machine with onnxruntime-gpu")
    variants = ["original"] if args.quick else ["original", "dual_bn", "deep_spatial", "parallel"]
    batches = [1] if args.quick else [1, 8]
    repeats = min(args.repeats, 20) if args.quick else args.repeats
    import subprocess

    gpu = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                         capture_output=True, text=True, check=False).stdout.strip()
    print(f"ONNX Runtime {ort.__version__}; GPU: {gpu or 'unknown (nvidia-smi gave nothing)'}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for variant in variants:
            run_variant(variant, batches, repeats, Path(tmp))


if __name__ == "__main__":
    main()
