"""cbam-gpu-check where it can be tested without a GPU: the one-line refusal, and the report and
verdict it writes (the stages replaced by fakes)."""

from __future__ import annotations

import subprocess
import sys
import types

import pytest

from cbam_deploy.api.gpu_check import GpuStack, gpu_check, markdown, write_report
from cbam_deploy.backends.cuda_runtime import probe
from cbam_deploy.errors import UsageError
from cbam_deploy.models import list_variants
from tests.conftest import REPO

STACK = GpuStack("NVIDIA H100 80GB HBM3", "9.0", "13.0", "13.0", "10.13.3.9", "0.53.6", "1.31.1")


@pytest.mark.skipif(bool(probe().gpus), reason="checks the refusal on a machine without an NVIDIA GPU")
def test_without_gpu_or_tensorrt_it_fails_in_one_line_naming_what_is_missing(tmp_path):
    result = subprocess.run([sys.executable, "-m", "cbam_deploy.cli.gpu_check", "--out", str(tmp_path / "gc")],
                            capture_output=True, text=True, cwd=REPO, timeout=120)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 3 and len(lines) == 1, result.stderr
    assert lines[0].startswith("cbam-gpu-check: error: the GPU check cannot run here: no usable NVIDIA GPU")
    assert "'tensorrt' Python package is not installed" in lines[0] and "docker run --rm --gpus all" in lines[0]
    assert not (tmp_path / "gc").exists() and result.stdout == ""


def _cell(backend, precision, status, reason="", failures=()):
    parity = types.SimpleNamespace(worst=lambda: types.SimpleNamespace(scaled_error=1.5e-6))
    accuracy = {"top1": 0.97, "reference_top1": 0.975}
    return types.SimpleNamespace(backend=backend, precision=precision, status=status, reason=reason,
                                 failures=list(failures), parity=parity if status != "skipped" else None,
                                 accuracy=accuracy if status != "skipped" else None,
                                 label=f"{backend} {precision}")


def _fakes(failing: str | None = None):
    seen: list[tuple[str, str]] = []

    def export_fn(host, variant, out):
        seen.append((host, variant))
        return types.SimpleNamespace(is_reference_task=True, name=f"{variant}_{host}"), object()

    def validate_fn(model, **kwargs):
        cells = [_cell(b, p, "fail" if model.name == failing and b == "tensorrt" and p == "int8" else "pass",
                       failures=["held-out top-1 91.0% is 6.5 points below eager's"] if model.name == failing else ())
                 for p in kwargs["precisions"] for b in kwargs["backends"]]
        return types.SimpleNamespace(cells=cells)

    def time_fn(model, module, precisions, backends, calibration, engines, **kwargs):
        return [{"backend": b, "precision": p, "batch": n, "p50_ms": 2.0 if b != "eager-cpu" else 20.0,
                 "throughput_per_s": n / 0.002} for n in kwargs["batch_sizes"]
                for b, p in [("eager-cpu", "fp32")] + [(b, p) for b in backends for p in precisions]]

    return seen, dict(export_fn=export_fn, validate_fn=validate_fn, time_fn=time_fn, stack=STACK)


def test_report_covers_every_variant_and_ends_in_the_verdict(tmp_path, monkeypatch):
    monkeypatch.setattr("cbam_deploy.api.calibration.calibration_for", lambda model, source: (None, "", None))
    seen, fakes = _fakes()
    report = gpu_check(tmp_path, **fakes)
    assert seen == [(h, v) for h in ("resnet_mini", "resnet50") for v in list_variants()]
    assert report.passed and report.verdict().startswith("PASS: 8 models, 48 backend x precision cells")
    path = write_report(report, tmp_path / "gpu-check.md")
    text = path.read_text()
    assert text.rstrip().splitlines()[-1] == f"**Verdict: {report.verdict()}**"
    assert "| parallel_resnet50 | tensorrt | int8 | pass | 1.50e-06 | 97.0% (97.5%) |" in text
    assert "| parallel_resnet50 | 8 | tensorrt | int8 | 2.000 | 4000 | 10.0x |" in text
    with pytest.raises(UsageError, match="already exists; pass --force"):
        write_report(report, path)


def test_any_failure_fails_the_verdict_and_names_the_first(tmp_path, monkeypatch):
    monkeypatch.setattr("cbam_deploy.api.calibration.calibration_for", lambda model, source: (None, "", None))
    _, fakes = _fakes(failing="dual_bn_resnet_mini")
    report = gpu_check(tmp_path, variants=["original", "dual_bn"], hosts=["resnet_mini"], **fakes)
    assert not report.passed
    assert report.verdict() == ("FAIL: 1 failure(s); first: dual_bn_resnet_mini: tensorrt int8: held-out top-1 "
                                "91.0% is 6.5 points below eager's")
    assert "## Failures" in markdown(report)


def test_without_tensorrt_the_verdict_says_tensorrt_was_not_checked(tmp_path, monkeypatch):
    monkeypatch.setattr("cbam_deploy.api.calibration.calibration_for", lambda model, source: (None, "", None))
    _, fakes = _fakes()
    report = gpu_check(tmp_path, variants=["original"], hosts=["resnet_mini"], require_tensorrt=False, **fakes)
    assert report.backends == ("onnxruntime-cuda",)
    assert report.verdict().endswith("(TensorRT NOT checked: --without-tensorrt)")
