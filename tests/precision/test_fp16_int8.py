"""FP16 keeps every sigmoid gate in FP32 and agrees with eager; INT8 is symmetric per-channel Q/DQ,
leaves the gates and the classifier out, and agrees with eager within the INT8 tolerance."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from cbam_deploy.compare import compare_output, tolerance_for
from cbam_deploy.precision import convert_to_fp16, find_attention_regions, quantize_int8
from tests.conftest import EXPORT_SHAPES, VARIANTS

HOSTS = ["resnet18", pytest.param("resnet50", marks=pytest.mark.slow)]


@pytest.fixture
def exported(exported_host):
    def get(arch: str, variant: str):
        host = exported_host(arch, variant)
        return host.model, onnx.load(str(host.onnx_path))

    return get


# Shares the session-wide exports (tests/conftest.py) with the other module of this group.

def run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return s.run(None, {"input": x})[0]


def eager(model, x):
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def elem_types(model: onnx.ModelProto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(model)
    values = list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)
    return {v.name: v.type.tensor_type.elem_type for v in values}


@pytest.mark.parametrize("arch", HOSTS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_fp16_keeps_gates_fp32_and_matches_eager(exported, arch, variant):
    model, fp32 = exported(arch, variant)
    fp16, report = convert_to_fp16(fp32)
    types = elem_types(fp16)
    sigmoids = [n for n in fp16.graph.node if n.op_type == "Sigmoid"]
    assert len(sigmoids) == 32 if arch == "resnet50" else 16
    assert all(types[n.output[0]] == onnx.TensorProto.FLOAT and types[n.input[0]] == onnx.TensorProto.FLOAT for n in sigmoids)
    half_weights = [t for t in fp16.graph.initializer if t.data_type == onnx.TensorProto.FLOAT16]
    assert len(half_weights) > 10  # the backbone really is FP16
    assert report.kept_fp32_ops["Sigmoid"] == len(sigmoids)
    assert fp16.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # keep_io_types
    shape = EXPORT_SHAPES[arch]
    x = np.random.default_rng(1).standard_normal((3, *shape[1:])).astype(np.float32)
    cmp = compare_output("logits", run(fp16, x), eager(model, x), tolerance_for("fp16"), classifier=True)
    assert cmp.passed, cmp.failures


@pytest.mark.parametrize("arch", HOSTS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_int8_is_symmetric_per_channel_qdq_without_gates_and_matches_eager(exported, arch, variant):
    model, fp32 = exported(arch, variant)
    rng = np.random.default_rng(2)
    shape = EXPORT_SHAPES[arch]
    calibration = rng.standard_normal((32, *shape[1:])).astype(np.float32)
    int8, report = quantize_int8(fp32, calibration, calibration_label="test")
    nodes = list(int8.graph.node)
    producers = {o: n for n in nodes for o in n.output}
    assert report.qdq_pairs > 0 and sum(n.op_type == "DequantizeLinear" for n in nodes) >= report.qdq_pairs
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in int8.graph.initializer}
    zero_points = [inits[n.input[2]] for n in nodes if n.op_type in ("QuantizeLinear", "DequantizeLinear") and len(n.input) > 2]
    assert zero_points and all(np.all(z == 0) for z in zero_points)
    weight_dq = [n for n in nodes if n.op_type == "DequantizeLinear" and inits.get(n.input[0]) is not None
                 and inits[n.input[0]].dtype == np.int8]
    assert weight_dq and all(inits[n.input[1]].size > 1 for n in weight_dq)  # per-channel scales
    for sig in (n for n in nodes if n.op_type == "Sigmoid"):
        assert producers[sig.input[0]].op_type != "DequantizeLinear"
    gemm = next(n for n in nodes if n.op_type == "Gemm")
    assert all(producers.get(i) is None or producers[i].op_type != "DequantizeLinear" for i in gemm.input)
    x = rng.standard_normal((3, *shape[1:])).astype(np.float32)  # same distribution as the calibration
    cmp = compare_output("logits", run(int8, x), eager(model, x), tolerance_for("int8"), classifier=True)
    assert cmp.passed, cmp.failures


def test_attention_regions_are_found_by_pattern_in_every_variant(exported):
    for variant in VARIANTS:
        _, fp32 = exported("resnet18", variant)
        regions = find_attention_regions(fp32)
        assert len(regions) == 16  # channel + spatial gate in each of the 8 blocks
        for region in regions:
            ops = {n.op_type for n in fp32.graph.node if n.name in region.nodes}
            assert "Sigmoid" in ops and ops & {"ReduceMean", "ReduceMax", "GlobalAveragePool", "GlobalMaxPool"}
