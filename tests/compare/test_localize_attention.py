"""Localization's per-block table covers every attention block the finder sees, not only CBAM: a row
per Coordinate Attention / SE / ECA / SimAM block of the example networks, and one corrupted weight
inside a CA or SE block is named, its block's row out of tolerance and the blocks before it clean."""

from __future__ import annotations

import functools

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from cbam_deploy.compare.eager_capture import user_modules
from cbam_deploy.compare.graph_scopes import node_scopes
from cbam_deploy.api.localize import localize
from cbam_deploy.fold import fold_batchnorms
from cbam_deploy.models.user_model import UserModelSpec, build_user_model
from cbam_deploy.onnx_export import graph
from cbam_deploy.onnx_export.torch_to_onnx import export_to_onnx
from cbam_deploy.optimize import globalize_pooling
from cbam_deploy.options import EXPORTERS
from tests.conftest import EXAMPLES, randomize_batchnorm

# name -> (factory, kwargs, blocks and the kinds of gate each has, a weight inside the second block)
NETWORKS = {
    "coordatt_yolo": ("coordatt_yolo.py:build_net", {}, {"ca3": "spatial", "ca4": "spatial", "ca5": "spatial"},
                      "ca4.conv_h"),
    "se_net": ("se_simam_nets.py:build_se_net", {}, {f"features.{i}.attention": "channel" for i in range(3)},
               "features.1.attention.fc.2"),
    "mobilenetv3_h_sigmoid": ("mobilenetv3_se.py:build_net", {}, {f"blocks.{i}.conv.5": "channel" for i in range(3)},
                              "blocks.1.conv.5.fc.2"),
    "eca_resnet": ("eca_resnet.py:build_net", {}, {f"layers.{i}.0.eca": "channel" for i in range(3)},
                   "layers.1.0.eca.conv"),
    "simam_net": ("se_simam_nets.py:build_simam_net", {}, {f"features.{i}.attention": "spatial" for i in range(3)},
                  None),
}


def _model(name: str) -> torch.nn.Module:
    factory, kwargs, _, _ = NETWORKS[name]
    model = build_user_model(UserModelSpec(f"{EXAMPLES / factory}", kwargs=kwargs, seed=0)).model
    return randomize_batchnorm(model, seed=4, gamma=(0.2, 0.6)).eval()


@functools.lru_cache(maxsize=None)
def _exported(name: str, exporter: str) -> bytes:
    """Fold, rewrite pooling, export and simplify as cbam-export does."""
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    folded, _ = globalize_pooling(fold_batchnorms(_model(name))[0], [x])
    proto = export_to_onnx(folded, (x,), input_names=["input"], output_names=["out"], dynamic_axes=[{0: "batch"}],
                           exporter=exporter)
    return graph.simplify(proto).SerializeToString()


def _feed() -> dict[str, np.ndarray]:
    return {"input": np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)}


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_a_row_per_attention_block(name, exporter):
    _, _, blocks, _ = NETWORKS[name]
    report = localize(_exported(name, exporter), _model(name), _feed(), precision="fp32")
    assert report.passed, report.verdict
    assert [b.block for b in report.blocks] == list(blocks)
    for row in report.blocks:
        assert getattr(row, blocks[row.block]) is not None and row.output is not None, row
        other = "channel" if blocks[row.block] == "spatial" else "spatial"
        assert getattr(row, other) is None
    assert "| " + next(iter(blocks)) + " |" in report.to_markdown()


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("name", [n for n in sorted(NETWORKS) if NETWORKS[n][3]])
def test_corrupted_weight_inside_an_attention_block_is_named(name, exporter):
    _, _, blocks, module = NETWORKS[name]
    proto, model = onnx.load_from_string(_exported(name, exporter)), _model(name)
    # The weight the module's Conv/Gemm/MatMul reads (a bias-free Linear's is an unnamed transposed MatMul input).
    scopes = node_scopes(proto, user_modules(model))
    inits = {t.name: t for t in proto.graph.initializer}
    weight = next(inits[i] for n in proto.graph.node if n.op_type in ("Conv", "Gemm", "MatMul")
                  and scopes[n.name][-1:] == [module] for i in n.input[1:2] if i in inits)
    weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight) * np.float32(1.5), weight.name))
    report = localize(proto, model, _feed(), precision="fp32")
    assert report.first is not None and report.first.module == module, report.verdict
    tol = report.tolerance.max_scaled_error
    first, second = report.blocks[0], report.blocks[1]
    kind = blocks[second.block]
    assert getattr(first, kind) < tol and getattr(second, kind) > tol and second.output > tol
