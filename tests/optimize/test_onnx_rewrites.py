"""The CBAM-aware rewrites: each one matches where it should, nowhere else, and keeps parity with
eager at an untraced batch size and resolution, for every variant."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

import cbam_deploy
from cbam_deploy.models import create_model
from cbam_deploy.optimize import DEFAULT_REWRITES, REWRITES, optimize_graph

from ..conftest import VARIANTS, randomize_batchnorm

# Matches per rewrite on ResNet-18 (8 CBAM blocks): pooling = 2 per block + the head's average pool.
EXPECTED = {
    "global_pooling": lambda v: 17,
    "merged_channel_mlp": lambda v: 8,
    "parallel_gate_sum": lambda v: 8 if v == "parallel" else 0,
    "channel_mean_matmul": lambda v: 16 if v == "deep_spatial" else 8,  # its residual spatial stack pools twice
    "channel_mean_conv": lambda v: 0,  # after channel_mean_matmul nothing is left for it
}


def ort_run(path_or_bytes, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(path_or_bytes, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_rewrite_keeps_parity_at_untraced_shapes(tmp_path, variant):
    model = randomize_batchnorm(create_model("resnet18", variant, num_classes=10), seed=3, gamma=(0.2, 0.6)).eval()
    report = cbam_deploy.export(model, [(1, 3, 64, 64)], out=tmp_path, name=variant, dynamic="all",
                                optimize=list(REWRITES), classifier=True)
    assert report.passed  # the pipeline's own parity, pass on
    assert report.optimize.applied == {name: EXPECTED[name](variant) for name in REWRITES}
    x = np.random.default_rng(5).standard_normal((2, 3, 80, 96)).astype(np.float32)  # not traced
    got = ort_run(str(report.onnx_path), x)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    assert np.abs(got - want).max() / np.abs(want).max() < 1e-4
    assert "BatchNormalization" not in report.ops_after_optimize


def test_rewrites_leave_a_network_without_cbam_alone(tmp_path):
    model = create_model("resnet18", None, num_classes=10).eval()
    report = cbam_deploy.export(model, [(1, 3, 64, 64)], out=tmp_path, name="plain", optimize=list(REWRITES))
    assert report.optimize.applied == {"global_pooling": 1, "merged_channel_mlp": 0, "parallel_gate_sum": 0,
                                       "channel_mean_matmul": 0, "channel_mean_conv": 0}


def test_unknown_rewrite_is_refused(tmp_path):
    import onnx

    with pytest.raises(cbam_deploy.UsageError, match="unknown rewrite"):
        optimize_graph(onnx.ModelProto(), ["fuse_everything"])
    assert set(DEFAULT_REWRITES) <= set(REWRITES)
