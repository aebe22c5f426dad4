"""The attention finder recognises gates however they are computed: Sigmoid, HardSigmoid, relu6(x + 3) / 6
(Div by 6 or Mul by 1/6), F.hardsigmoid, 1 + sigmoid, products of gates (Coordinate Attention),
parameter-free SimAM; and not the activations x * sigmoid(x) (SiLU) and x * h_sigmoid(x) (h_swish).
FP16 keeps every gate it finds in FP32, and matches eager."""

from __future__ import annotations

import io

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cbam_deploy.precision import convert_to_fp16, find_attention_regions

GATES = {
    "sigmoid": torch.sigmoid,
    "nn_hardsigmoid": nn.Hardsigmoid(),
    "f_hardsigmoid": F.hardsigmoid,
    "relu6_div": lambda s: F.relu6(s + 3) / 6,
    "relu6_mul": lambda s: F.relu6(s + 3.0) * (1.0 / 6),
    "clamp_div": lambda s: torch.clamp(3 + s, 0, 6) / 6,
    "one_plus_sigmoid": lambda s: 1 + torch.sigmoid(s),
}


class SE(nn.Module):
    """conv -> SE with the given gate -> h_swish activation (an activation, not a gate)."""

    def __init__(self, gate):
        super().__init__()
        self.gate = gate
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc1, self.fc2 = nn.Conv2d(8, 4, 1), nn.Conv2d(4, 8, 1)

    def forward(self, x):
        x = self.conv(x)
        y = x * self.gate(self.fc2(torch.relu(self.fc1(x.mean((2, 3), keepdim=True)))))
        return y * F.relu6(y + 3) / 6  # h_swish


class CoordGates(nn.Module):
    """Coordinate Attention's two gates, applied in turn or as a product."""

    def __init__(self, product: bool):
        super().__init__()
        self.product = product
        self.conv, self.conv_h, self.conv_w = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 1), nn.Conv2d(8, 8, 1)

    def forward(self, x):
        x = self.conv(x)
        a_h = self.conv_h(x.mean(3, keepdim=True)).sigmoid()
        a_w = self.conv_w(x.mean(2, keepdim=True)).sigmoid()
        return x * (a_h * a_w) if self.product else x * a_w * a_h


class SimAM(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)

    def forward(self, x):
        x = self.conv(x)
        n = x.shape[2] * x.shape[3] - 1
        d = (x - x.mean(dim=[2, 3], keepdim=True)).pow(2)
        return x * torch.sigmoid(d / (4 * (d.sum(dim=[2, 3], keepdim=True) / n + 1e-4)) + 0.5)


def export(model: nn.Module, exporter: str = "torchscript") -> onnx.ModelProto:
    x = torch.randn(2, 3, 16, 16)
    if exporter == "dynamo":
        n, h = torch.export.Dim("n", min=1, max=64), torch.export.Dim("h", min=8, max=256)
        program = torch.onnx.export(model.eval(), (x,), dynamo=True, opset_version=18, input_names=["input"],
                                    dynamic_shapes=({0: n, 2: h, 3: h},), verbose=False)
        return program.model_proto
    buf = io.BytesIO()
    torch.onnx.export(model.eval(), x, buf, dynamo=False, input_names=["input"], opset_version=18,
                      dynamic_axes={"input": {0: "n", 2: "h", 3: "w"}})
    return onnx.load_from_string(buf.getvalue())


def fp16_matches_eager(model: nn.Module, proto: onnx.ModelProto) -> set[str]:
    """Convert to FP16, compare with eager at an untraced shape; returns the nodes kept FP32."""
    fp16, report = convert_to_fp16(proto)
    x = np.random.default_rng(0).standard_normal((3, 3, 24, 20)).astype(np.float32)
    session = ort.InferenceSession(fp16.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    assert np.abs(got - want).max() / np.abs(want).max() < 2e-2
    return set(report.kept_fp32)


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
@pytest.mark.parametrize("form", sorted(GATES))
def test_gate_found_however_computed_and_kept_fp32(form, exporter):
    torch.manual_seed(0)
    model = SE(GATES[form]).eval()
    proto = export(model, exporter)
    (region,) = find_attention_regions(proto)  # the h_swish after it is an activation
    kinds = {n.op_type for n in proto.graph.node if n.name in region.nodes}
    assert {"ReduceMean", "Relu", "Conv"} <= kinds or {"GlobalAveragePool", "Relu", "Conv"} <= kinds
    assert region.kind == ("sigmoid" if "sigmoid" == form or "one_plus" in form else "hard_sigmoid")
    assert set(region.nodes) <= fp16_matches_eager(model, proto)


@pytest.mark.parametrize("product", [False, True], ids=["in_turn", "product"])
def test_coordinate_attention_gates_combined_by_multiplication(product):
    model = CoordGates(product).eval()
    proto = export(model)
    regions = find_attention_regions(proto)
    assert len(regions) == 2
    kept = fp16_matches_eager(model, proto)
    convs = {n.name for n in proto.graph.node if n.op_type == "Conv"}
    in_regions = set().union(*(r.nodes for r in regions))
    assert len(convs & in_regions) == 2 and convs & in_regions <= kept  # conv_h, conv_w; not the trunk conv


def test_simam_parameter_free_gate_found_with_its_energy():
    model = SimAM().eval()
    proto = export(model)
    (region,) = find_attention_regions(proto)
    kinds = {n.op_type for n in proto.graph.node if n.name in region.nodes}
    assert {"Sigmoid", "ReduceMean", "ReduceSum", "Pow", "Sub"} <= kinds and "Conv" not in kinds
    assert set(region.nodes) <= fp16_matches_eager(model, proto)


@pytest.mark.parametrize("act", [nn.SiLU(), lambda x: x * F.relu6(x + 3) / 6, nn.Hardswish(),
                                 lambda x: x * F.hardsigmoid(x), lambda x: x * torch.sigmoid(1.702 * x)],
                         ids=["silu", "h_swish", "Hardswish", "x_hardsigmoid", "quick_gelu"])
def test_activations_are_not_gates(act):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1, self.c2 = nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 3)

        def forward(self, x):
            return act(self.c2(act(self.c1(x))))

    assert find_attention_regions(export(Net())) == []


def test_gates_found_again_in_the_fp16_graph_through_its_casts():
    proto = export(SE(nn.Hardsigmoid()).eval())
    fp16, _ = convert_to_fp16(proto)
    (region,) = find_attention_regions(fp16)
    assert region.kind == "hard_sigmoid"


@pytest.mark.parametrize("form", ["nn_hardsigmoid", "relu6_div"])
def test_int8_leaves_hard_sigmoid_gates_and_their_convs_unquantized(form):
    from cbam_deploy.precision import quantize_int8

    proto = export(SE(GATES[form]).eval())
    (region,) = find_attention_regions(proto)
    calibration = np.random.default_rng(1).standard_normal((4, 3, 16, 16)).astype(np.float32)
    int8, report = quantize_int8(proto, calibration, calibration_label="test")
    assert set(region.nodes) <= set(report.excluded)
    convs = [n for n in int8.graph.node if n.op_type == "Conv"]
    producers = {o: n.op_type for n in int8.graph.node for o in n.output}
    quantized = [c.name for c in convs if producers.get(c.input[1]) == "DequantizeLinear"]
    gate_convs = {n.name for n in proto.graph.node if n.op_type == "Conv" and n.name in region.nodes}
    assert len(gate_convs) == 2 and not gate_convs & set(quantized)


def test_bam_style_one_plus_sigmoid_of_a_full_map_is_a_gate():
    from tests.models.test_attention_maps import BAM

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), BAM(16)).eval()
    proto = export(model)
    (region,) = find_attention_regions(proto)
    kinds = {n.op_type for n in proto.graph.node if n.name in region.nodes}
    assert {"Sigmoid", "Add", "Gemm", "Conv"} <= kinds
    assert set(region.nodes) <= fp16_matches_eager(model, proto)
