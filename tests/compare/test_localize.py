"""The localizer points at the right place: one layer's weights corrupted in an exported graph, it
names exactly that module (a conv in the middle of the network, a channel-MLP weight, a spatial-
attention conv), with both exporters; an FP16 graph whose attention was not kept FP32 names the gate's
MLP; ``cbam-validate --localize`` on a corrupted model exits 1 and names the layer."""

from __future__ import annotations

import functools
import json
import shutil
import warnings

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from torch import nn

from cbam_deploy.api.localize import localize
from cbam_deploy.fold import fold_batchnorms
from cbam_deploy.models import create_model, list_variants
from cbam_deploy.onnx_export import graph
from cbam_deploy.onnx_export.torch_to_onnx import export_to_onnx
from cbam_deploy.optimize import optimize_graph
from cbam_deploy.options import EXPORTERS

BLOCK = "layer2.0.cbam"  # a block in the middle of resnet_mini


def _model(variant: str, mlp_scale: float = 1.0) -> nn.Module:
    torch.manual_seed(0)
    model = create_model("resnet_mini", variant, num_classes=10).eval()
    with torch.no_grad():
        for conv in _channel_mlp(model).values():
            if mlp_scale != 1.0:  # positive weights: the hidden units stay active and the sums add up
                conv.weight.abs_().mul_(mlp_scale)
    return model


def _channel_mlp(model: nn.Module) -> dict[str, nn.Conv2d]:
    """The 1x1 convs of the block's channel gate (the spatial gate's convs are k x k, k > 1)."""
    return {n: m for n, m in model.named_modules()
            if n.startswith(BLOCK + ".") and isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1)}


def _spatial_conv(model: nn.Module) -> str:
    return next(n for n, m in model.named_modules()
                if n.startswith(BLOCK + ".") and isinstance(m, nn.Conv2d) and m.kernel_size != (1, 1))


@functools.lru_cache(maxsize=None)
def _exported(variant: str, exporter: str, mlp_scale: float = 1.0) -> bytes:
    """Fold, export, simplify and rewrite as cbam-export does (default rewrites)."""
    folded, _ = fold_batchnorms(_model(variant, mlp_scale))
    proto = export_to_onnx(folded, (torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)),),
                           input_names=["input"], output_names=["logits"], dynamic_axes=[{0: "batch"}], exporter=exporter)
    proto, _ = optimize_graph(graph.simplify(proto))
    return proto.SerializeToString()


def _corrupted(data: bytes, module: str) -> onnx.ModelProto:
    proto = onnx.load_from_string(data)
    weight = next(t for t in proto.graph.initializer if t.name.endswith(module + ".weight"))
    weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight) * np.float32(1.5), weight.name))
    return proto


def _feed() -> dict[str, np.ndarray]:
    return {"input": np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)}


TARGETS = {
    "middle conv": lambda model: "layer2.0.conv2",
    "channel-MLP weight": lambda model: next(iter(_channel_mlp(model))),
    "spatial-attention conv": _spatial_conv,
}


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("target", list(TARGETS))
@pytest.mark.parametrize("variant", list_variants())
def test_corrupted_layer_is_named(variant, target, exporter):
    model = _model(variant)
    module = TARGETS[target](model)
    report = localize(_corrupted(_exported(variant, exporter), module), model, _feed(), precision="fp32")
    assert not report.passed
    assert report.first is not None and report.first.module == module, report.verdict
    assert f"first module out of tolerance: {module} " in report.verdict
    assert "this module introduced the error" in report.verdict  # its inputs still match eager
    assert report.first_inputs and max(i["scaled_error"] for i in report.first_inputs) < 1e-5


@pytest.mark.parametrize("variant", list_variants())
def test_a_graph_without_scopes_or_node_names_still_names_the_layer(variant):
    """Exports made before scopes were kept (or by other tools) carry only weight names: the
    localizer must fall back to them without blaming a container whose outputs it cannot see."""
    model = _model(variant)
    proto = _corrupted(_exported(variant, "dynamo"), "layer2.0.conv2")
    for i, node in enumerate(proto.graph.node):
        del node.metadata_props[:]
        node.name = f"node_{i}"
    report = localize(proto, model, _feed(), precision="fp32")
    assert report.first is not None and report.first.module == "layer2.0.conv2", report.verdict


@pytest.mark.parametrize("exporter", EXPORTERS)  # dynamo: module scopes kept through onnxsim and the rewrites
@pytest.mark.parametrize("variant", list_variants())
def test_clean_export_passes_with_a_row_per_attention_block(variant, exporter):
    report = localize(_exported(variant, exporter), _model(variant), _feed(), precision="fp32")
    assert report.passed, report.verdict
    assert [b.block for b in report.blocks] == [f"layer{i}.0.cbam" for i in (1, 2, 3, 4)]
    assert all(b.channel is not None and b.spatial is not None and b.output is not None for b in report.blocks)
    assert not report.unpaired or all("rewritten" in why or "no ONNX node" in why for why in report.unpaired.values())
    md = report.to_markdown()
    assert "| layer2.0.cbam |" in md and json.dumps(report.to_dict())


def _unshared(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Each node its own copy of an initializer several read. Why: the simplifier shares equal ones
    (the zero biases of folded random-init BatchNorms) between an FP16 conv and an FP32 attention
    conv, and the FP16 converter then gives one of them the other's type."""
    inits = {t.name: t for t in proto.graph.initializer}
    seen: set[str] = set()
    for node in proto.graph.node:
        for k, name in enumerate(node.input):
            if name in inits and name in seen:
                copy = onnx.TensorProto()
                copy.CopyFrom(inits[name])
                copy.name = f"{name}__{node.name}"
                proto.graph.initializer.append(copy)
                node.input[k] = copy.name
            seen.add(name)
    return proto


@pytest.mark.parametrize("variant", list_variants())
def test_fp16_gate_left_in_half_precision_names_the_gates_mlp(variant, monkeypatch):
    """Large channel-MLP weights overflow FP16; the attention finder keeps them FP32. With the finder
    made to miss every gate, the FP16 graph's failure must be localized to that MLP."""
    import cbam_deploy.precision.fp16 as fp16

    model = _model(variant, mlp_scale=5000.0)
    proto = _unshared(onnx.load_from_string(_exported(variant, EXPORTERS[0], 5000.0)))
    assert localize(fp16.convert_to_fp16(proto)[0], model, _feed(), precision="fp16").passed
    monkeypatch.setattr(fp16, "find_attention_regions", lambda model: [])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the converter's notes on clamped tiny weights
        missed, _ = fp16.convert_to_fp16(proto)
    report = localize(missed, model, _feed(), precision="fp16")
    mlp = {name.rpartition(".")[0] for name in _channel_mlp(model)}
    assert report.first is not None and report.first.module.rpartition(".")[0] in mlp, report.verdict


def test_int8_compares_every_block(tmp_path):
    from cbam_deploy.precision import quantize_int8

    calibration = np.random.default_rng(1).standard_normal((8, 3, 64, 64)).astype(np.float32)
    proto, _ = quantize_int8(onnx.load_from_string(_exported("original", EXPORTERS[0])), calibration,
                             calibration_label="seeded noise")
    report = localize(proto, _model("original"), _feed(), precision="int8")
    assert len(report.blocks) == 4 and all(b.output is not None for b in report.blocks)
    assert report.first is None or report.first.module.startswith("layer"), report.verdict


def test_cli_localize_names_the_corrupted_layer(tmp_path, capsys):
    from cbam_deploy.cli.export import main as export_main
    from cbam_deploy.cli.validate import main as validate_main

    assert export_main(["--variant", "original", "--out", str(tmp_path), "--name", "good"]) == 0
    capsys.readouterr()
    bad = tmp_path / "bad"
    (bad / "1").mkdir(parents=True)
    path = tmp_path / "good" / "1" / "model.onnx"
    proto = _corrupted(path.read_bytes(), "layer3.0.conv2")
    onnx.save(proto, str(bad / "1" / "model.onnx"))
    shutil.copy(tmp_path / "good" / "export.json", bad / "export.json")
    # --no-verify: the file no longer matches the SHA-256 its export recorded (it was edited by hand).
    code = validate_main([str(bad), "--precisions", "fp32", "--backends", "onnxruntime-cpu", "--accuracy-count", "50",
                          "--no-verify", "--localize", "--markdown", str(tmp_path / "v.md")])
    err = capsys.readouterr().err
    assert code == 1
    assert "first module out of tolerance: layer3.0.conv2 " in " ".join(err.split())
    assert "first module out of tolerance: layer3.0.conv2 " in (tmp_path / "v.md").read_text()
