"""The CBAM-aware rewrites: each one matches where it should, nowhere else, and keeps parity with
eager at an untraced batch size and resolution, for every variant; by default a rewrite applies only
where it earns its place (inside CBAM gates, never growing the graph)."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

import cbam_deploy
from cbam_deploy.models import create_model
from cbam_deploy.optimize import DEFAULT_REWRITES, REWRITES, optimize_graph

from ..conftest import VARIANTS, randomize_batchnorm

# Matches per rewrite on ResNet-18 (8 CBAM blocks), dynamo exporter (it writes pooling as Reduce*;
# the TorchScript exporter writes GlobalAveragePool itself): pooling = 2 per block + the head's.
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
                                optimize=list(REWRITES), classifier=True, exporter="dynamo")
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
    report = cbam_deploy.export(model, [(1, 3, 64, 64)], out=tmp_path, name="plain", optimize=list(REWRITES),
                                exporter="dynamo")
    assert report.optimize.applied == {"global_pooling": 1, "merged_channel_mlp": 0, "parallel_gate_sum": 0,
                                       "channel_mean_matmul": 0, "channel_mean_conv": 0}


def test_unknown_rewrite_is_refused(tmp_path):
    import onnx

    with pytest.raises(cbam_deploy.UsageError, match="unknown rewrite"):
        optimize_graph(onnx.ModelProto(), ["fuse_everything"])
    assert set(DEFAULT_REWRITES) <= set(REWRITES)


def onnx_of(model, shape=(1, 3, 64, 64)):
    import io

    import onnx

    from cbam_deploy.fold import fold_batchnorms

    buf = io.BytesIO()
    torch.onnx.export(fold_batchnorms(model)[0], torch.randn(*shape), buf, dynamo=False, input_names=["input"],
                      output_names=["out"], opset_version=18, dynamic_axes={"input": {0: "n", 2: "h", 3: "w"}})
    return onnx.load_from_string(buf.getvalue())


@pytest.mark.parametrize("variant", VARIANTS)
def test_defaults_never_grow_the_graph(variant):
    proto = onnx_of(randomize_batchnorm(create_model("resnet18", variant, num_classes=10)).eval())
    optimized, report = optimize_graph(proto)
    assert len(optimized.graph.node) <= len(proto.graph.node)
    assert "channel_mean_matmul" not in report.applied  # measured on ONNX Runtime CPU only, +4 nodes a gate
    assert all(change <= 0 for change in report.nodes_added.values())
    assert report.applied.get("parallel_gate_sum", 0) == (8 if variant == "parallel" else 0)


def test_a_guarded_rewrite_that_would_grow_the_graph_is_skipped_and_said():
    proto = onnx_of(create_model("resnet18", "original", num_classes=10).eval())
    _, guarded = optimize_graph(proto, ["channel_mean_matmul"], guarded=True)
    asked, explicit = optimize_graph(proto, ["channel_mean_matmul"])  # named explicitly: applied everywhere
    grown = len(asked.graph.node) - len(proto.graph.node)
    assert explicit.applied == {"channel_mean_matmul": 8} and explicit.nodes_added == {"channel_mean_matmul": grown}
    assert guarded.applied == {} and guarded.skipped == {"channel_mean_matmul": f"would add {grown} nodes for 8 matches"}
    assert 0 < grown <= 8 * 4  # 5 nodes for each ReduceMean (opset 18), its axes constant gone


def test_guarded_rewrites_touch_only_cbam_gates():
    import onnx
    from onnx import TensorProto, helper

    # A channel mean and an H, W mean outside any gate: plain feature statistics, not attention.
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["x", "c_axes"], ["cm"], keepdims=1),
         helper.make_node("ReduceMean", ["x", "hw_axes"], ["hw"], keepdims=1),
         helper.make_node("Add", ["cm", "hw"], ["y"])],
        "stats", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 4, 4])],
        [helper.make_tensor("c_axes", TensorProto.INT64, [1], [1]), helper.make_tensor("hw_axes", TensorProto.INT64, [2], [2, 3])])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.checker.check_model(proto)
    names = ["global_pooling", "channel_mean_conv"]
    assert optimize_graph(proto, names, guarded=True)[1].applied == {"global_pooling": 0, "channel_mean_conv": 0}
    assert optimize_graph(proto, names, guarded=False)[1].applied == {"global_pooling": 1, "channel_mean_conv": 1}
