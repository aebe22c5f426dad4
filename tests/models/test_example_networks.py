"""Networks written the way users' code writes CBAM (examples/user_models/): the authors' package
with relative imports, timm's BatchNormAct2d gates, an Ultralytics-style detector with a stride-32
neck that returns (tensor, dict). Each exports with dynamic batch and size, matches eager at shapes
it was not traced at, and keeps its attention FP32 in FP16."""

from __future__ import annotations

import onnx
import pytest

import cbam_deploy
from cbam_deploy.models.user_model import UserModelSpec, build_user_model
from cbam_deploy.precision import find_attention_regions
from tests.conftest import EXAMPLES, randomize_batchnorm

# name -> (factory, kwargs, traced input shape, CBAM modules)
NETWORKS = {
    "authors_package": (f"{EXAMPLES / 'cbam_authors' / 'model_resnet.py'}:ResidualNet",
                        {"network_type": "CIFAR10", "depth": 18, "num_classes": 10, "att_type": "CBAM", "width": 16},
                        (1, 3, 32, 32), 8),
    "timm_resnet": (f"{EXAMPLES / 'timm_style.py'}:build_resnet", {}, (1, 3, 64, 64), 4),
    "ultralytics": (f"{EXAMPLES / 'ultralytics_style.py'}:build_net", {}, (1, 3, 128, 128), 3),
}


def build(name: str):
    factory, kwargs, shape, cbams = NETWORKS[name]
    model = build_user_model(UserModelSpec(factory, kwargs=kwargs, seed=0)).model
    return randomize_batchnorm(model, seed=4, gamma=(0.2, 0.6)).eval(), shape, cbams


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_exports_with_dynamic_axes_and_matches_eager_elsewhere(tmp_path, name):
    model, shape, _ = build(name)
    report = cbam_deploy.export(model, [shape], out=tmp_path, name=name, dynamic="all")
    assert report.passed, report.parity.failures()
    untraced = [c for c in report.parity.cases if "not traced" in c.label]
    assert untraced and all(c.passed for c in untraced)
    graph = onnx.load(str(report.onnx_path)).graph
    assert "BatchNormalization" not in {n.op_type for n in graph.node}
    assert not any("never called" in note for note in report.notes)
    if name == "ultralytics":  # (predictions, {"p3", "p4", "p5"}) outside export mode: four named outputs
        assert len(graph.output) == 4


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_fp16_keeps_every_gate_and_channel_mlp_fp32(tmp_path, name):
    model, shape, cbams = build(name)
    # --dynamic all, as users export detectors: the head's anchor grid (arange + Cast) must survive FP16.
    report = cbam_deploy.export(model, [shape], out=tmp_path, name=name, precision="fp16", dynamic="all")
    assert report.passed, report.parity.failures()
    kept = report.metadata["precision_details"]["kept_fp32_ops"]
    assert kept.get("Sigmoid", 0) >= 2 * cbams  # every gate's Sigmoid stays FP32
    if name == "ultralytics":  # ... but not the 57 SiLU activations' (x * sigmoid(x)): those run in FP16
        assert kept["Sigmoid"] <= 2 * cbams + 1  # the gates, and the head's class-score Sigmoid
    if name == "authors_package":
        assert kept["Gemm"] == 4 * cbams  # two Linears, applied to the avg and the max pool
    else:
        assert kept["Conv"] >= 2 * cbams  # the 1x1-conv MLP and the spatial conv of every gate


# Attention beyond CBAM, written as the modules' papers' public code writes them:
# name -> (factory, kwargs, traced input shape, gates in the network)
ATTENTION_NETWORKS = {
    "coordatt_yolo": (f"{EXAMPLES / 'coordatt_yolo.py'}:build_net", {}, (1, 3, 64, 64), 6),
    "coordatt_yolo_product": (f"{EXAMPLES / 'coordatt_yolo.py'}:build_net", {"product": True}, (1, 3, 64, 64), 6),
    "mobilenetv3_h_sigmoid": (f"{EXAMPLES / 'mobilenetv3_se.py'}:build_net", {}, (1, 3, 64, 64), 3),
    "mobilenetv3_torchvision": (f"{EXAMPLES / 'mobilenetv3_se.py'}:build_net", {"torchvision": True}, (1, 3, 64, 64), 3),
    "eca_resnet": (f"{EXAMPLES / 'eca_resnet.py'}:build_net", {}, (1, 3, 64, 64), 3),
    "se_net": (f"{EXAMPLES / 'se_simam_nets.py'}:build_se_net", {}, (1, 3, 64, 64), 3),
    "simam_net": (f"{EXAMPLES / 'se_simam_nets.py'}:build_simam_net", {}, (1, 3, 64, 64), 3),
}


def build_attention(name: str):
    factory, kwargs, shape, gates = ATTENTION_NETWORKS[name]
    model = build_user_model(UserModelSpec(factory, kwargs=kwargs, seed=0)).model
    return randomize_batchnorm(model, seed=4, gamma=(0.2, 0.6)).eval(), shape, gates


def gate_types(proto: onnx.ModelProto) -> tuple[int, list[int]]:
    """(gates the finder sees, the element type each gate's activation computes in)."""
    inferred = onnx.shape_inference.infer_shapes(proto)
    types = {v.name: v.type.tensor_type.elem_type for v in [*inferred.graph.value_info, *inferred.graph.output]}
    nodes = {n.name: n for n in proto.graph.node}
    regions = find_attention_regions(proto)
    return len(regions), [types.get(nodes[r.gate].output[0]) for r in regions]


@pytest.mark.parametrize("name", sorted(ATTENTION_NETWORKS))
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_attention_network_exports_dynamic_all_matches_eager_untraced_and_keeps_gates(tmp_path, name, precision):
    model, shape, gates = build_attention(name)
    report = cbam_deploy.export(model, [shape], out=tmp_path, name=name, dynamic="all", precision=precision)
    assert report.passed, report.parity.failures()
    untraced = [c for c in report.parity.cases if "not traced" in c.label]
    assert untraced and all(c.passed for c in untraced)
    proto = onnx.load(str(report.onnx_path))
    assert [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim][2:] == \
        ["height", "width"]
    found, types = gate_types(proto)
    assert found == gates  # every gate of the network, and nothing else (SiLU, h_swish are activations)
    # FP16: every gate computes in FP32 (the finder reads the FP16 graph through its Casts).
    assert types == [onnx.TensorProto.FLOAT] * gates
    if precision == "fp16":
        kept = report.metadata["precision_details"]["kept_fp32_ops"]
        assert sum(n.op_type in ("Conv", "Gemm", "MatMul") for n in proto.graph.node) > sum(
            kept.get(op, 0) for op in ("Conv", "Gemm", "MatMul"))  # the trunk did go FP16


def test_coordinate_attention_with_the_dynamo_exporter_and_dynamic_all(tmp_path):
    """torch.export failed on a symbolic size in (None, 1) pooling; the rewritten mean keeps H, W symbolic."""
    model, _, gates = build_attention("coordatt_yolo")
    report = cbam_deploy.export(model, [(1, 3, 64, 96)], out=tmp_path, name="ca", dynamic="all", exporter="dynamo")
    assert report.passed, report.parity.failures()
    assert any("not traced" in c.label and c.passed for c in report.parity.cases)
    assert gate_types(onnx.load(str(report.onnx_path))) == (gates, [onnx.TensorProto.FLOAT] * gates)
