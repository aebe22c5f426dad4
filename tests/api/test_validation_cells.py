"""What cbam-validate does with backends: one ONNX Runtime session per cell that runs, and on a
machine without CUDA no raw ONNX Runtime provider error reaches the terminal (a real subprocess)."""

from __future__ import annotations

import re
import subprocess
import sys

import onnxruntime as ort
import pytest

from cbam_deploy.backends.cuda_runtime import probe
from tests.conftest import REPO

ALL_BACKENDS = "onnxruntime-cpu,onnxruntime-cuda,onnxruntime-tensorrt,tensorrt"
RAW_PROVIDER_NOISE = ("EP Error", "Failed to load library", "Falling back to", "libonnxruntime_providers",
                      "Traceback")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A built-in model (its eager model is rebuilt from the metadata by cbam-validate)."""
    from cbam_deploy.cli.export import main as export_main

    out = tmp_path_factory.mktemp("models")
    code = export_main(["--arch", "cbam", "--variant", "parallel", "--input-shape", "1x32x8x8", "--out", str(out)])
    assert code == 0
    return out / "parallel_cbam"


@pytest.fixture
def sessions(monkeypatch):
    made: list[object] = []
    real = ort.InferenceSession

    def counting(*args, **kwargs):
        made.append(real(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(ort, "InferenceSession", counting)
    return made


def test_one_session_per_validation_cell(model_dir, sessions):
    from cbam_deploy.api.validate import validate

    per_cell: list[tuple[str, str, int]] = []
    before = [0]

    def on_cell(cell) -> None:
        per_cell.append((cell.label, cell.status, len(sessions) - before[0]))
        before[0] = len(sessions)

    report = validate(model_dir, precisions=("fp32", "fp16"), backends=ALL_BACKENDS.split(","), batch_sizes=(1, 2),
                      on_cell=on_cell)
    ran = [(label, made) for label, status, made in per_cell if status != "skipped"]
    assert ran and all(made == 1 for _, made in ran), per_cell
    assert all(made == 0 for _, status, made in per_cell if status == "skipped"), per_cell
    assert report.passed


@pytest.mark.skipif(bool(probe().gpus), reason="checks the skips on a machine without an NVIDIA GPU")
def test_cbam_validate_without_cuda_prints_no_raw_provider_errors(model_dir):
    result = subprocess.run([sys.executable, "-m", "cbam_deploy.cli.validate", str(model_dir), "--precisions", "fp32",
                             "--backends", ALL_BACKENDS, "--batch-sizes", "1"],
                            capture_output=True, text=True, cwd=REPO, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    for noise in RAW_PROVIDER_NOISE:
        assert noise not in result.stderr and noise not in result.stdout, noise
    text = " ".join((result.stderr + result.stdout).split())  # rich wraps long lines
    # Cells that cannot run here are folded into one line per reason, naming backend and precision.
    assert re.search(r"cannot run here: [^:]*onnxruntime-cuda[^:]*\(fp32\): [^:]*libraries not found", text), text
