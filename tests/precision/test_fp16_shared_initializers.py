"""FP16 conversion when one initializer feeds both a converted node and a kept-FP32 attention node.

Exporters and onnxsim merge identical constants: in a random-init network every folded bias of the
same width is zeros, so the stem conv and a channel-attention conv can read one tensor. Found on the
GPU machine as "Conv bound to different types (float16 and float)" for a `parallel` ResNet-50.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from cbam_deploy.precision import convert_to_fp16


def _gated_conv_with_shared_bias() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    c = 8
    inits = [
        numpy_helper.from_array(rng.standard_normal((c, 3, 3, 3)).astype(np.float32), "w_stem"),
        numpy_helper.from_array(rng.standard_normal((c, c, 1, 1)).astype(np.float32) * 0.1, "w_gate"),
        numpy_helper.from_array(np.zeros(c, np.float32), "zeros_bias"),  # shared, as a merged constant
    ]
    nodes = [
        helper.make_node("Conv", ["input", "w_stem", "zeros_bias"], ["x"], pads=[1, 1, 1, 1], name="stem"),
        helper.make_node("GlobalAveragePool", ["x"], ["pooled"], name="pool"),
        helper.make_node("Conv", ["pooled", "w_gate", "zeros_bias"], ["logit"], name="gate_conv"),
        helper.make_node("Sigmoid", ["logit"], ["gate"], name="gate"),
        helper.make_node("Mul", ["x", "gate"], ["output"], name="apply"),
    ]
    graph = helper.make_graph(nodes, "shared_bias", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, c, 16, 16])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)
    onnx.checker.check_model(model, full_check=True)
    return model


def test_a_shared_initializer_does_not_break_the_fp16_model():
    model = _gated_conv_with_shared_bias()
    converted, report = convert_to_fp16(model)
    assert "gate_conv" in report.kept_fp32  # the gate's conv stays FP32 ...
    types = {t.name: t.data_type for t in converted.graph.initializer}
    assert types["w_stem"] == TensorProto.FLOAT16  # ... the stem goes FP16, each with a bias of its own type
    stem = next(n for n in converted.graph.node if n.name == "stem")
    gate = next(n for n in converted.graph.node if n.name == "gate_conv")
    assert types[stem.input[2]] == TensorProto.FLOAT16 and types[gate.input[2]] == TensorProto.FLOAT
    x = np.random.default_rng(1).standard_normal((1, 3, 16, 16)).astype(np.float32)
    expected = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    got = ort.InferenceSession(converted.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    assert np.abs(got - expected).max() / np.abs(expected).max() < 2e-2  # the FP16 tolerance
