"""GPU smoke test of everything CUDA in cbam-deploy that runs without TensorRT.

Run by ``benchmarks/gpu_smoke.sh`` on a machine with an NVIDIA GPU (and onnxruntime-gpu), over an
exported model folder. Prints one JSON object per check (``{"check": ..., ...}``) and exits non-zero
if any check failed:

- cuda: the CUDA runtime through ``backends.cuda_runtime`` (ctypes on libcudart; no torch), checked
  against torch's own view of the GPU where torch has CUDA.
- probe: the quiet provider probe for every backend.
- ort_parity: ONNX Runtime CUDA against ONNX Runtime CPU on the model, batch 1 and 8, and the
  provider really used (``session.get_providers()``); latency medians of both.
- lifecycle: a runner entered twice makes one session; free GPU memory after 5 open/close cycles.
- polygraphy_cuda: Polygraphy's CUDA wrapper (what ``TrtRunner`` allocates with): a device buffer
  round trip and its memory returned.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

FAILED: list[str] = []


def emit(check: str, ok: bool, **data) -> None:
    print(json.dumps({"check": check, "ok": ok, **data}, default=str), flush=True)
    if not ok:
        FAILED.append(check)


def check_cuda() -> None:
    from cbam_deploy.backends.cuda_runtime import probe

    env = probe()
    data = {"library": env.library, "driver": env.driver_version, "runtime": env.runtime_version,
            "gpus": [g.__dict__ for g in env.gpus], "problem": env.problem}
    try:
        import torch

        if torch.cuda.is_available():  # only to cross-check our ctypes reading; the package never does this
            data["torch_view"] = [torch.cuda.get_device_name(0), "%d.%d" % torch.cuda.get_device_capability(0)]
    except ImportError:
        pass
    ok = bool(env.gpus) and ("torch_view" not in data or data["torch_view"] == [env.gpus[0].name,
                                                                              env.gpus[0].compute_capability])
    emit("cuda", ok, **data)


def check_probe() -> None:
    from cbam_deploy.backends import BACKENDS, backend_problem

    problems = {name: backend_problem(name) for name in BACKENDS}
    emit("probe", problems["onnxruntime-cuda"] is None, problems=problems)


def _median_ms(fn, runs: int = 30) -> float:
    for _ in range(5):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def check_ort_parity(model: Path) -> None:
    from cbam_deploy.backends import open_runner

    with open_runner("onnxruntime-cpu", model) as cpu, open_runner("onnxruntime-cuda", model) as cuda:
        used = cuda.session.get_providers()
        spec = cpu.input_specs()[0]
        rows = []
        for batch in (1, 8):
            shape = [d if isinstance(d, int) else (batch if axis == 0 else 64)  # dynamic H/W: 64
                     for axis, d in enumerate(spec.shape)]
            feed = {spec.name: np.random.default_rng(batch).standard_normal(shape).astype(np.float32)}
            a, b = cpu.infer(feed), cuda.infer(feed)
            err = max(float(np.abs(a[k] - b[k]).max() / (np.abs(a[k]).max() or 1.0)) for k in a)
            top1 = float(np.mean([np.array_equal(a[k].argmax(-1), b[k].argmax(-1)) for k in a]))
            rows.append({"batch": batch, "worst_scaled_error": err, "top1_same": top1,
                         "cpu_ms": _median_ms(lambda: cpu.infer(feed)), "cuda_ms": _median_ms(lambda: cuda.infer(feed))})
    ok = used[0] == "CUDAExecutionProvider" and all(r["worst_scaled_error"] < 1e-3 for r in rows)
    emit("ort_parity", ok, model=str(model), providers=used, rows=rows)


def check_lifecycle(model: Path) -> None:
    from cbam_deploy.backends import open_runner
    from cbam_deploy.backends.cuda_runtime import memory_info

    runner = open_runner("onnxruntime-cuda", model)
    with runner, runner:  # entered twice: one session
        spec = runner.input_specs()[0]
        shape = [d if isinstance(d, int) else 1 for d in spec.shape[:2]] + [
            d if isinstance(d, int) else 64 for d in spec.shape[2:]]  # dynamic dims: batch 1, 64x64
        runner.infer({spec.name: np.zeros(shape, np.float32)})
        twice = runner.activations
    after_exit = runner.session is None
    free0, total = memory_info()
    frees = []
    for _ in range(5):
        with open_runner("onnxruntime-cuda", model) as r:
            r.infer({spec.name: np.zeros(shape, np.float32)})
        frees.append(memory_info()[0])
    drift_mib = (free0 - frees[-1]) / 2**20
    emit("lifecycle", twice == 1 and after_exit and drift_mib < 64, sessions_when_entered_twice=twice,
         session_freed=after_exit, total_mib=total // 2**20, free_mib_before=free0 // 2**20,
         free_mib_after_each_cycle=[f // 2**20 for f in frees], drift_mib=round(drift_mib, 1))


def check_polygraphy_cuda() -> None:
    from cbam_deploy.backends.cuda_runtime import _cudart, memory_info

    lib_dir = str(Path(_cudart()[1]).parent) if _cudart() and "/" in _cudart()[1] else ""
    if lib_dir:  # Polygraphy looks for libcudart on LD_LIBRARY_PATH (read when its wrapper is made)
        os.environ["LD_LIBRARY_PATH"] = lib_dir + os.pathsep + os.environ.get("LD_LIBRARY_PATH", "")
    from polygraphy import cuda

    free0 = memory_info()[0]
    host = np.random.default_rng(0).standard_normal((64, 3, 224, 224)).astype(np.float32)
    back = np.empty_like(host)
    stream = cuda.Stream()
    with cuda.DeviceArray(shape=host.shape, dtype=np.float32) as device:
        device.copy_from(host, stream=stream)
        device.copy_to(back, stream=stream)
        stream.synchronize()
        during = memory_info()[0]
    stream.free()
    after = memory_info()[0]
    emit("polygraphy_cuda", np.array_equal(host, back) and after >= during,
         bytes=host.nbytes, used_mib_during=(free0 - during) / 2**20, returned_mib=(after - during) / 2**20)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="an exported model folder (its 1/model.onnx is used)")
    args = parser.parse_args()
    model = args.model / "1" / "model.onnx"
    for name, check in [("cuda", check_cuda), ("probe", check_probe), ("ort_parity", lambda: check_ort_parity(model)),
                        ("lifecycle", lambda: check_lifecycle(model)), ("polygraphy_cuda", check_polygraphy_cuda)]:
        try:
            check()
        except Exception as exc:  # report and go on: one broken check must not hide the others
            emit(name, False, error=f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    print(json.dumps({"failed": FAILED}), flush=True)
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
