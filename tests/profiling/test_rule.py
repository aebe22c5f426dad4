"""The attribution rule on a hand-made graph and profile: NCHWc-fused nodes, layout reorders, the
residual Add/ReLU the attention un-fuses, Q/DQ pairs; the profile parser's gap charging; TensorRT's
profiler with ``tensorrt`` faked."""

from __future__ import annotations

import json
import types

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from cbam_deploy.profiling.attribution import attribute
from cbam_deploy.profiling.events import calibrate, load_events, node_times
from cbam_deploy.profiling.modules import attention_map, scopes_for
from cbam_deploy.profiling.report import build_report

B = "/layer1/layer1.0"
CA, SA = f"{B}/cbam/channelattention", f"{B}/cbam/spatialattention"


def _t(node: str) -> str:
    return node + "_output_0"


def _source() -> onnx.ModelProto:
    """conv3 -> CBAM (channel: pool, fc, sigmoid, Mul; spatial: mean, conv, sigmoid, Mul) -> Add(x) -> ReLU -> conv."""
    rng = np.random.default_rng(0)

    def w(name, shape):
        return helper.make_tensor(name, TensorProto.FLOAT, shape, rng.standard_normal(shape).astype(np.float32).ravel())

    spec = [
        (f"{B}/conv3/Conv", "Conv", ["x", "layer1.0.conv3.weight"], {}),
        (f"{CA}/avg_pool/GlobalAveragePool", "GlobalAveragePool", [_t(f"{B}/conv3/Conv")], {}),
        (f"{CA}/fc/fc.0/Conv", "Conv", [_t(f"{CA}/avg_pool/GlobalAveragePool"), "layer1.0.cbam.channelattention.fc.0.weight"], {}),
        (f"{CA}/sigmoid/Sigmoid", "Sigmoid", [_t(f"{CA}/fc/fc.0/Conv")], {}),
        (f"{CA}/Mul", "Mul", [_t(f"{CA}/sigmoid/Sigmoid"), _t(f"{B}/conv3/Conv")], {}),
        (f"{SA}/ReduceMean", "ReduceMean", [_t(f"{CA}/Mul")], {"axes": [1], "keepdims": 1}),
        (f"{SA}/conv1/Conv", "Conv", [_t(f"{SA}/ReduceMean"), "layer1.0.cbam.spatialattention.conv1.weight"], {"pads": [1] * 4}),
        (f"{SA}/sigmoid/Sigmoid", "Sigmoid", [_t(f"{SA}/conv1/Conv")], {}),
        (f"{SA}/Mul", "Mul", [_t(f"{SA}/sigmoid/Sigmoid"), _t(f"{CA}/Mul")], {}),
        (f"{B}/Add", "Add", [_t(f"{SA}/Mul"), "x"], {}),
        (f"{B}/relu_1/Relu", "Relu", [_t(f"{B}/Add")], {}),
        ("/layer2/layer2.0/conv1/Conv", "Conv", [_t(f"{B}/relu_1/Relu"), "layer2.0.conv1.weight"], {}),
    ]
    nodes = [helper.make_node(op, ins, [_t(name)], name=name, **attrs) for name, op, ins, attrs in spec]
    nodes[-1].output[0] = "y"
    inits = [w("layer1.0.conv3.weight", [8, 8, 1, 1]), w("layer1.0.cbam.channelattention.fc.0.weight", [8, 8, 1, 1]),
             w("layer1.0.cbam.spatialattention.conv1.weight", [1, 1, 3, 3]), w("layer2.0.conv1.weight", [8, 8, 1, 1])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 4, 4])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


# The graph ONNX Runtime would run: NCHWc convolutions named after their output tensor, reorders
# around the attention, the residual Add and ReLU left alone, and a Q/DQ pair before the next conv.
RAN = [
    ("ReorderInput_token_0", "ReorderInput", ["x"], ["r0"]),
    (_t(f"{B}/conv3/Conv") + "_nchwc", "Conv", ["r0"], ["r1"]),
    ("ReorderOutput_token_1", "ReorderOutput", ["r1"], [_t(f"{B}/conv3/Conv")]),
    (_t(f"{CA}/avg_pool/GlobalAveragePool") + "_nchwc", "GlobalAveragePool", ["r1"], ["r2"]),
    (_t(f"{CA}/sigmoid/Sigmoid") + "_nchwc", "Conv", ["r2"], ["r3"]),  # fc.0 with its sigmoid fused in
    ("ReorderOutput_token_2", "ReorderOutput", ["r3"], [_t(f"{CA}/sigmoid/Sigmoid")]),
    (f"{CA}/Mul", "Mul", [_t(f"{CA}/sigmoid/Sigmoid"), _t(f"{B}/conv3/Conv")], [_t(f"{CA}/Mul")]),
    (f"{SA}/ReduceMean", "ReduceMean", [_t(f"{CA}/Mul")], [_t(f"{SA}/ReduceMean")]),
    (_t(f"{SA}/sigmoid/Sigmoid") + "_nchwc", "Conv", [_t(f"{SA}/ReduceMean")], ["r4"]),
    ("ReorderOutput_token_3", "ReorderOutput", ["r4"], [_t(f"{SA}/sigmoid/Sigmoid")]),
    (f"{SA}/Mul", "Mul", [_t(f"{SA}/sigmoid/Sigmoid"), _t(f"{CA}/Mul")], [_t(f"{SA}/Mul")]),
    (f"{B}/Add", "Add", [_t(f"{SA}/Mul"), "x"], [_t(f"{B}/Add")]),
    (f"{B}/relu_1/Relu", "Relu", [_t(f"{B}/Add")], [_t(f"{B}/relu_1/Relu")]),
    ("relu_QuantizeLinear", "QuantizeLinear", [_t(f"{B}/relu_1/Relu"), "s", "z"], ["q"]),
    ("relu_DequantizeLinear", "DequantizeLinear", ["q", "s", "z"], ["dq"]),
    ("ReorderInput_token_4", "ReorderInput", ["dq"], ["r5"]),
    ("/layer2/layer2.0/conv1/Conv_output_0_nchwc", "Conv", ["r5"], ["r6"]),
    ("ReorderOutput_token_5", "ReorderOutput", ["r6"], ["y"]),
]

BLOCK = "layer1.0.cbam"
EXPECTED = {  # node -> (module, part, rule)
    "ReorderInput_token_0": ("layer1.0.conv3", "conv", "conversion"),  # a graph input: the consumer's
    _t(f"{B}/conv3/Conv") + "_nchwc": ("layer1.0.conv3", "conv", "fused"),
    "ReorderOutput_token_1": ("layer1.0.cbam.channelattention", "gating", "conversion"),  # for the gate Mul
    _t(f"{CA}/avg_pool/GlobalAveragePool") + "_nchwc": ("layer1.0.cbam.channelattention.avg_pool", "channel", "fused"),
    _t(f"{CA}/sigmoid/Sigmoid") + "_nchwc": ("layer1.0.cbam.channelattention.fc.0", "channel", "fused"),
    "ReorderOutput_token_2": ("layer1.0.cbam.channelattention", "gating", "conversion"),
    f"{CA}/Mul": ("layer1.0.cbam.channelattention", "gating", "own"),
    f"{SA}/ReduceMean": ("layer1.0.cbam.spatialattention", "spatial", "own"),
    _t(f"{SA}/sigmoid/Sigmoid") + "_nchwc": ("layer1.0.cbam.spatialattention.conv1", "spatial", "fused"),
    "ReorderOutput_token_3": ("layer1.0.cbam.spatialattention", "gating", "conversion"),
    f"{SA}/Mul": ("layer1.0.cbam.spatialattention", "gating", "own"),
    f"{B}/Add": (BLOCK, "gating", "unfused epilogue"),
    f"{B}/relu_1/Relu": (BLOCK, "gating", "unfused epilogue"),
    "relu_QuantizeLinear": (BLOCK, "gating", "conversion"),  # Q: the node that wrote its input (the ReLU)
    "relu_DequantizeLinear": ("layer2.0.conv1", "conv", "conversion"),  # DQ: the node that reads its result
    "ReorderInput_token_4": (BLOCK, "gating", "conversion"),  # through the Q/DQ pair back to the ReLU
    "/layer2/layer2.0/conv1/Conv_output_0_nchwc": ("layer2.0.conv1", "conv", "fused"),
    "ReorderOutput_token_5": ("layer2.0.conv1", "conv", "conversion"),  # a graph output: the producer's
}


@pytest.fixture(scope="module")
def source():
    proto = _source()
    scopes = scopes_for(proto)
    return proto, scopes, attention_map(proto, scopes)


def test_attention_map_of_the_hand_made_graph(source):
    _, _, att = source
    assert att.order == [BLOCK]
    assert att.parts[BLOCK] == {"channel": ["layer1.0.cbam.channelattention"], "spatial": ["layer1.0.cbam.spatialattention"]}
    assert sorted(att.gate_muls[BLOCK]) == sorted([f"{CA}/Mul", f"{SA}/Mul"])


def test_rule_on_reorders_fused_nodes_and_qdq(source):
    proto, scopes, att = source
    found = attribute(proto, scopes, att, RAN)
    got = {n: (a.module, a.part, a.rule) for n, a in found.items()}
    assert got == EXPECTED
    assert all(found[n].block == BLOCK for n, (_, part, _) in EXPECTED.items() if part in ("channel", "spatial", "gating"))
    assert found["ReorderInput_token_0"].conversion and not found[f"{B}/Add"].conversion


def _events(durations: dict[str, float], runs: int, gap: float = 2.0) -> list[dict]:
    """A Chrome-trace profile: ``runs`` model_run events, each node's kernel after a ``gap`` (us)."""
    events, ts = [], 0.0
    for _ in range(runs):
        start = ts
        for name, dur in durations.items():
            ts += gap
            events.append({"cat": "Node", "name": name + "_kernel_time", "ts": ts, "dur": dur,
                           "args": {"op_name": dict((n, op) for n, op, _, _ in RAN)[name], "provider": "CPUExecutionProvider"}})
            ts += dur
        events.append({"cat": "Session", "name": "model_run", "ts": start, "dur": ts + 5 - start, "args": {}})
        ts += 20
    return events


def test_profile_json_is_parsed_with_gaps_charged_to_the_next_kernel(source, tmp_path):
    durations = {n: 10.0 * (i + 1) for i, (n, _, _, _) in enumerate(RAN)}
    path = tmp_path / "onnxruntime_profile_x.json"
    path.write_text(json.dumps(_events(durations, runs=4)))
    times = node_times(load_events(path), skip_runs=1)
    assert len(times.run_ms) == 3
    for name, dur in durations.items():
        assert times.median(name) == pytest.approx((dur + 2.0) / 1000)
        assert times.kernel_median(name) == pytest.approx(dur / 1000)
    e2e = times.run_median  # an unprofiled run as long as the profiled one: no profiler cost to remove
    node_ms, covered, c = calibrate(times, e2e)
    assert c == 0 and 0.95 < covered <= 1 and sum(node_ms.values()) == pytest.approx(covered * e2e)
    proto, scopes, att = source
    report = build_report("hand", "onnxruntime-cpu", node_ms, {n: op for n, op, _, _ in RAN},
                          attribute(proto, scopes, att, RAN), e2e, times.run_median, 3, att.parts, att.order)
    (block,) = report.blocks
    gating = [n for n, (_, part, _) in EXPECTED.items() if part == "gating"]
    assert block.gating_ms == pytest.approx(sum(node_ms[n] for n in gating))
    assert report.attention_share == pytest.approx(block.ms / e2e)
    from cbam_deploy.profiling.tips import what_to_try

    tips = what_to_try(report)  # every figure in them is this run's
    assert f"attention in layer1 costs most: {block.ms:.2f} ms" in tips[0]
    caused = sum(node_ms[n] for n, (_, part, rule) in EXPECTED.items() if part == "gating" and rule != "own")
    assert any(t.startswith(f"{caused:.2f} ms") for t in tips)
    assert any("Q/DQ" in t and "layer1.0.cbam" in t for t in tips)
    overhead = sum(s["runtime overhead"] for s in report.stages)
    assert overhead == pytest.approx(sum(node_ms[n] for n in ("ReorderInput_token_0", "relu_DequantizeLinear",
                                                              "ReorderOutput_token_5")))


def test_tensorrt_profiler_with_tensorrt_faked(source):
    from cbam_deploy.profiling.tensorrt import fused_names, layer_profiler, runtime_from_layer_times

    class IProfiler:  # what the bindings give: a base class whose __init__ must be called
        def __init__(self):
            self.initialised = True

    fake = types.SimpleNamespace(IProfiler=IProfiler)
    layers = {f"{B}/conv3/Conv": 0.5,
              f"{CA}/avg_pool/GlobalAveragePool + {CA}/fc/fc.0/Conv + {CA}/sigmoid/Sigmoid": 0.1,
              f"Reformatting CopyNode for Input Tensor 0 to {CA}/Mul": 0.05,
              f"{CA}/Mul": 0.05,
              f"{{ForeignNode[{SA}/ReduceMean...{B}/relu_1/Relu]}}": 0.2,
              "/layer2/layer2.0/conv1/Conv": 0.5}
    profiler = layer_profiler(fake)
    assert isinstance(profiler, IProfiler) and profiler.initialised
    for _ in range(3):
        for name, ms in layers.items():
            profiler.report_layer_time(name, ms)
        profiler.end_run(1.45)
    assert fused_names(f"{{ForeignNode[{SA}/ReduceMean...{B}/relu_1/Relu]}}") == [f"{SA}/ReduceMean", f"{B}/relu_1/Relu"]
    measured = runtime_from_layer_times(profiler.times, e2e_ms=1.45, runs=3)
    proto, scopes, att = source
    found = attribute(proto, scopes, att, measured.ran, measured.fused_from)
    names = list(layers)
    assert (found[names[0]].module, found[names[0]].part) == ("layer1.0.conv3", "conv")
    assert (found[names[1]].module, found[names[1]].part) == ("layer1.0.cbam.channelattention.fc.0", "channel")
    assert (found[names[2]].part, found[names[2]].block) == ("gating", BLOCK)  # the reformat feeds the gate Mul
    assert (found[names[4]].part, found[names[4]].block) == ("spatial", BLOCK)  # a Myelin region holding attention
    assert found[names[5]].module == "layer2.0.conv1" and not found[names[5]].is_attention
    assert sum(measured.node_ms.values()) == pytest.approx(1.40)  # the layers cover 1.40 of a 1.45 ms run


def test_ablation_summary_flags_noise_instead_of_reporting_a_negative_cost():
    from cbam_deploy.profiling.report import BlockTime, ProfileReport, ablation_summary

    report = ProfileReport("m", "onnxruntime-cpu", 10.0, 11.0, 5, nodes=[], modules=[], stages=[],
                           blocks=[BlockTime("layer1.0.cbam", channel_ms=1.0, spatial_ms=0.5, gating_ms=0.5)])
    quiet = ablation_summary(report, {"e2e": [0.010] * 5, "no attention": [0.008] * 5})
    assert quiet["measured_share"] == pytest.approx(0.2) and quiet["attributed_share"] == pytest.approx(0.2)
    assert "note" not in quiet and not report.notes
    noisy = ablation_summary(report, {"e2e": [0.010] * 5, "no attention": [0.011] * 5})
    assert noisy["measured_share"] < 0 and "noise" in noisy["note"] and report.notes
