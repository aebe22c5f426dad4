"""The Python API a training script uses: export, validate, benchmark on the user's module in memory."""

from __future__ import annotations

import onnx
import pytest
import torch

import cbam_deploy
from cbam_deploy.errors import UsageError

from .conftest import EXAMPLES, randomize_batchnorm


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
