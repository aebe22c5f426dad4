"""The Python API a training script uses: export, validate, benchmark on the user's module in memory."""

from __future__ import annotations

import onnx
import pytest
import torch

import cbam_deploy
from cbam_deploy.errors import UsageError

from tests.conftest import EXAMPLES, randomize_batchnorm


def load_example(name: str):
    from cbam_deploy.models.user_model import load_factory

    model = load_factory(f"{EXAMPLES / name}.py:build_net")()
    return randomize_batchnorm(model, seed=2, gamma=(0.2, 0.6)).eval()


def test_export_validate_benchmark(tmp_path):
    model = load_example("timm_style")
    report = cbam_deploy.export(model, [(1, 3, 64, 64)], out=tmp_path, name="net", dynamic="all",
                                output_names=["logits", "embedding"], classifier=True)
    assert report.passed and report.onnx_path.is_file()
    assert report.fold.unfolded == {} and len(report.fold.folded) == 9
    assert "BatchNormalization" not in {n.op_type for n in onnx.load(str(report.onnx_path)).graph.node}
    assert {c.label for c in report.parity.cases} >= {"batch 1 @ 64x64", "batch 3 @ 64x64", "batch 2 @ 96x96 (not traced)"}

    validation = cbam_deploy.validate(report.model_dir, eager=model, precisions=("fp32", "fp16"), batch_sizes=(2,))
    assert validation.passed, validation.failures()
    assert [c.status for c in validation.cells] == ["pass", "pass"]

    # A model that is not the exported one must fail validation: the check can fail.
    other = load_example("timm_style")
    randomize_batchnorm(other, seed=3)
    assert not cbam_deploy.validate(report.model_dir, eager=other, precisions=("fp32",), batch_sizes=(1,)).passed

    timings = cbam_deploy.benchmark(report.model_dir, eager=model, batch_sizes=(1, 2), runs=3, warmup=1, threads=1)
    assert sorted((t.label, t.batch) for t in timings) == [("eager fp32", 1), ("eager fp32", 2),
                                                         ("onnxruntime fp32", 1), ("onnxruntime fp32", 2)]
    assert all(len(t.seconds) == 3 and t.p50 > 0 for t in timings)

    with pytest.raises(UsageError, match="already exists"):
        cbam_deploy.export(model, torch.randn(1, 3, 64, 64), out=tmp_path, name="net")
    assert report.onnx_path.is_file()


def test_export_refuses_training_mode_and_bad_inputs(tmp_path):
    model = load_example("timm_style")
    with pytest.raises(UsageError, match="training mode"):
        cbam_deploy.export(model.train(), [(1, 3, 32, 32)], out=tmp_path)
    with pytest.raises(UsageError, match="neither a tensor nor a shape"):
        cbam_deploy.export(model.eval(), ["1x3x32x32"], out=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_precision_that_overflows_fails_its_cell_and_the_matrix_goes_on(tmp_path, monkeypatch):
    """Found on the GPU machine: a random-init `parallel` ResNet-50 answered Inf in its FP16 cell on ONNX
    Runtime CUDA (its FP32 logits reach 1.6e5, past FP16's 65504), and that stopped the whole
    validation. The runner's own NaN/Inf check (a real ONNX Runtime session whose outputs overflow,
    as FP16 does on the GPU; ONNX Runtime's CPU kernels compute FP16 in float) now fails that cell,
    with the reason, and the other cells still run."""
    import numpy as np

    import cbam_deploy.api.build as build
    from cbam_deploy.backends.onnxruntime import OnnxRuntimeRunner

    class Overflowing(OnnxRuntimeRunner):
        def infer_impl(self, feed):
            return {k: np.full_like(v, np.inf) for k, v in super().infer_impl(feed).items()}

    real = build.open_cell_runner
    monkeypatch.setattr(build, "open_cell_runner", lambda backend, data, *rest: (
        Overflowing(data) if _is_fp16(data) else real(backend, data, *rest)))
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU()).eval()
    report = cbam_deploy.export(model, [(1, 3, 8, 8)], out=tmp_path, name="hot")
    validation = cbam_deploy.validate(report.model_dir, eager=model, precisions=("fp16", "fp32"))
    by_precision = {c.precision: c for c in validation.cells}
    assert by_precision["fp16"].status == "fail" and "NaN or Inf" in by_precision["fp16"].failures[0]
    assert by_precision["fp32"].status == "pass"  # ran after the failed cell
    assert not validation.passed
    from cbam_deploy.api.validate import markdown_table

    assert "| fp16 | fail: " in markdown_table(validation.cells)


def _is_fp16(data: bytes) -> bool:
    model = onnx.load_from_string(data)
    return any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)
