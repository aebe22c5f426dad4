"""The attention finder sees CBAM however it is written: view and broadcast ops between the Sigmoid
and its Mul (Unsqueeze, Expand, Reshape, Flatten, Transpose, Tile), channel MLPs as Gemm/MatMul;
and not SiLU (``x * sigmoid(x)``), which is an activation. FP16 keeps what it finds in FP32."""

from __future__ import annotations

import io

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from cbam_deploy.models.user_model import load_factory
from cbam_deploy.precision import convert_to_fp16, find_attention_regions
from tests.conftest import EXAMPLES, randomize_batchnorm

FLOAT = onnx.TensorProto.FLOAT


class Gate(nn.Module):
    """A channel gate with a Linear (Gemm) or matrix (MatMul) MLP, broadcast back in one of several ways."""

    def __init__(self, broadcast: str, mlp: str = "linear", channels: int = 16):
        super().__init__()
        self.broadcast, self.mlp = broadcast, mlp
        self.fc1, self.fc2 = nn.Linear(channels, 4), nn.Linear(4, channels)
        self.w1 = nn.Parameter(torch.randn(channels, 4) * 0.3)
        self.w2 = nn.Parameter(torch.randn(4, channels) * 0.3)
        self.conv = nn.Conv2d(3, channels, 3, padding=1)

    def forward(self, x):
        x = self.conv(x)
        pooled = torch.flatten(x.mean((2, 3), keepdim=True), 1)
        hidden = self.fc2(torch.relu(self.fc1(pooled))) if self.mlp == "linear" else torch.relu(pooled @ self.w1) @ self.w2
        s = torch.sigmoid(hidden)
        n, c, h, w = x.shape
        if self.broadcast == "unsqueeze_expand":  # the CBAM authors' gate
            s = s.unsqueeze(2).unsqueeze(3).expand_as(x)
        elif self.broadcast == "reshape":
            s = s.view(n, c, 1, 1)
        elif self.broadcast == "transpose":
            s = s.reshape(n, 1, 1, c).permute(0, 3, 1, 2)
        elif self.broadcast == "tile":
            s = s[:, :, None, None].repeat(1, 1, h, w)
        elif self.broadcast == "flatten":
            s = torch.flatten(s.view(n, c, 1, 1, 1), 3)
        return x * s


def export(model: nn.Module, shape) -> onnx.ModelProto:
    buf = io.BytesIO()
    torch.onnx.export(model.eval(), torch.randn(*shape), buf, dynamo=False, input_names=["input"], output_names=["out"],
                      opset_version=18, dynamic_axes={"input": {0: "n", 2: "h", 3: "w"}})
    return onnx.load_from_string(buf.getvalue())


def fp32_weights(model: onnx.ModelProto, op: str) -> tuple[int, int]:
    """(nodes of ``op`` whose weight initializer is FP32, nodes of ``op``)."""
    types = {i.name: i.data_type for i in model.graph.initializer}
    nodes = [n for n in model.graph.node if n.op_type == op]
    return sum(types.get(n.input[1]) == FLOAT for n in nodes), len(nodes)


@pytest.mark.parametrize("mlp", ["linear", "matmul"])
@pytest.mark.parametrize("broadcast", ["unsqueeze_expand", "reshape", "transpose", "tile", "flatten"])
def test_gate_found_through_view_ops_and_kept_fp32(broadcast, mlp):
    torch.manual_seed(0)
    model = Gate(broadcast, mlp).eval()
    proto = export(model, (1, 3, 16, 16))
    (region,) = find_attention_regions(proto)
    kinds = {n.op_type for n in proto.graph.node if n.name in region.nodes}
    assert {"Sigmoid", "Relu", "ReduceMean"} <= kinds and kinds & {"Gemm", "MatMul"}
    assert "Conv" not in kinds  # the gated feature map's producer is not attention
    fp16, report = convert_to_fp16(proto)
    op = "Gemm" if mlp == "linear" else "MatMul"
    kept, total = fp32_weights(fp16, op)
    assert total == 2 and kept == 2, f"{op} weights became FP16"
    assert report.kept_fp32_ops.get("Sigmoid") == 1
    x = np.random.default_rng(0).standard_normal((2, 3, 24, 20)).astype(np.float32)
    got = ort.InferenceSession(fp16.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    assert np.abs(got - want).max() / np.abs(want).max() < 2e-2


def test_silu_is_an_activation_not_a_gate():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.SiLU(), nn.Conv2d(8, 8, 3), nn.SiLU())
    assert find_attention_regions(export(model, (1, 3, 16, 16))) == []


def authors_resnet():
    factory = load_factory(f"{EXAMPLES / 'cbam_authors' / 'model_resnet.py'}:ResidualNet")
    return randomize_batchnorm(factory("CIFAR10", 50, 10, "CBAM", width=16), seed=1, gamma=(0.2, 0.6)).eval()


def test_authors_resnet_fp16_keeps_every_channel_mlp_and_sigmoid_fp32():
    from cbam_deploy.fold import fold_batchnorms
    from cbam_deploy.optimize import globalize_pooling

    model = authors_resnet()
    folded, _ = globalize_pooling(fold_batchnorms(model)[0])
    proto = export(folded, (1, 3, 32, 32))
    blocks = 16  # ResNet-50: 3 + 4 + 6 + 3 bottlenecks, one CBAM each
    assert len(find_attention_regions(proto)) == 2 * blocks  # a channel and a spatial gate per block
    fp16, report = convert_to_fp16(proto)
    kept, total = fp32_weights(fp16, "Gemm")
    # Two Linears per MLP, applied to both pools (the exporter writes each call out); the classifier is FP16.
    assert (kept, total) == (4 * blocks, 4 * blocks + 1)
    assert report.kept_fp32_ops["Sigmoid"] == 2 * blocks and report.kept_fp32_ops["Expand"] == blocks


def test_ultralytics_style_detector_gates_found_and_silu_left_alone():
    model = load_factory(f"{EXAMPLES / 'ultralytics_style.py'}:build_net")(export=True).eval()
    proto = export(randomize_batchnorm(model), (1, 3, 64, 64))
    regions = find_attention_regions(proto)
    assert len(regions) == 6  # CBAM after P3, P4, P5: a channel and a spatial gate each
    sigmoids = sum(n.op_type == "Sigmoid" for n in proto.graph.node)
    assert sigmoids > 6 * 5  # SiLU everywhere, plus the class scores: none of them is a gate
