"""GPU detection through the CUDA runtime (ctypes, no torch) and the quiet library probe."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cbam_deploy.backends.cuda_runtime import probe, require_gpu
from cbam_deploy.backends.native import missing_libraries, needed_libraries
from cbam_deploy.errors import MissingDependencyError
from tests.conftest import REPO


def test_probe_never_raises_and_explains_an_absent_gpu():
    env = probe()
    if env.gpus:
        gpu = env.gpus[0]
        assert gpu.name and gpu.compute_capability.count(".") == 1 and gpu.total_bytes > 0
        assert require_gpu("x") == gpu
    else:
        assert env.problem and "\n" not in env.problem
        with pytest.raises(MissingDependencyError, match=r"^TensorRT needs an NVIDIA GPU: "):
            require_gpu("TensorRT")


def test_detection_imports_no_torch():
    code = ("import sys; from cbam_deploy.backends.cuda_runtime import probe; probe(); "
            "from cbam_deploy.backends import backend_problem; [backend_problem(b) for b in "
            "('onnxruntime-cuda', 'tensorrt')]; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "False", out.stderr


def test_needed_libraries_reads_elf_dynamic_section():
    import ctypes.util

    libm = Path(sys.executable).resolve()
    assert any(name.startswith("libc.so") for name in needed_libraries(libm)) or needed_libraries(libm) == []
    provider = Path(__import__("onnxruntime").__file__).parent / "capi" / "libonnxruntime_providers_cuda.so"
    if not provider.is_file():
        pytest.skip("onnxruntime without its CUDA provider library")
    needed = needed_libraries(provider)
    assert "libcudart.so.13" in needed or "libcudart.so.12" in needed
    assert set(missing_libraries(provider)) <= set(needed)
    assert ctypes.util  # the probe loads with ctypes, never through ONNX Runtime


def test_not_an_elf_file_has_no_needs(tmp_path):
    (tmp_path / "x.so").write_bytes(b"not elf")
    assert needed_libraries(tmp_path / "x.so") == [] and needed_libraries(tmp_path / "absent.so") == []
