"""Adaptive pooling that pins the map's size is rewritten to exact mean/amax arithmetic before export
(Coordinate Attention's ``(None, 1)``/``(1, None)``, sizes that divide the map), so ``--dynamic all``
holds: each rewrite matches eager in torch and, exported, at a shape the export was not traced at.
Sizes with no exact dynamic form fail the export in one line naming the module; ``torch.max(x, dim,
keepdim=True)`` exports without its unused ArgMax."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import cbam_deploy
from cbam_deploy.errors import CheckFailedError
from cbam_deploy.optimize import globalize_pooling
from cbam_deploy.optimize.adaptive_pooling import ExactAdaptivePool2d


class Pooled(nn.Module):
    """conv -> adaptive pooling -> broadcast back onto the map (so the output keeps H x W)."""

    def __init__(self, pool: nn.Module):
        super().__init__()
        self.conv, self.pool = nn.Conv2d(3, 4, 3, padding=1), pool

    def forward(self, x):
        y = self.conv(x)
        p = self.pool(y)
        return y + F.interpolate(p, size=y.shape[-2:], mode="nearest") if p.shape[-2:] != y.shape[-2:] else y * p


SIZES = [(None, 1), (1, None), (2, None), (None, 4), 4, (8, 2)]


@pytest.mark.parametrize("kind", [nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d])
@pytest.mark.parametrize("size", SIZES, ids=str)
def test_rewrite_matches_adaptive_pooling_at_dividing_shapes(kind, size):
    model = Pooled(kind(size)).eval()
    inputs = [torch.randn(2, 3, 16, 24), torch.randn(1, 3, 32, 8)]  # traced, and another dividing shape
    with torch.no_grad():
        wants = [model(t) for t in inputs]
    rewritten, names = globalize_pooling(model, inputs[:1])  # swaps in place
    assert names == ["pool"] and isinstance(rewritten.pool, ExactAdaptivePool2d)
    with torch.no_grad():
        for t, want in zip(inputs, wants):
            torch.testing.assert_close(rewritten(t), want, rtol=1e-5, atol=1e-6)


def test_output_size_one_is_left_to_global_pooling():
    model = Pooled(nn.AdaptiveAvgPool2d(1)).eval()
    assert globalize_pooling(model, [torch.randn(1, 3, 8, 8)]) == (model, [])
    assert isinstance(model.pool, nn.AdaptiveAvgPool2d)


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
@pytest.mark.parametrize("size", [(None, 1), (1, None), (2, None), 8], ids=str)
def test_exported_with_dynamic_hw_matches_eager_at_an_untraced_shape(tmp_path, exporter, size):
    model = Pooled(nn.AdaptiveAvgPool2d(size)).eval()
    report = cbam_deploy.export(model, [(1, 3, 32, 32)], out=tmp_path, name="pool", dynamic="all", exporter=exporter)
    assert report.passed, report.parity.failures()
    untraced = [c for c in report.parity.cases if "not traced" in c.label]
    assert untraced and all(c.passed for c in untraced)
    assert any("pooling calls" in note for note in report.notes)


def test_size_that_does_not_divide_fails_naming_the_module(tmp_path):
    model = Pooled(nn.AdaptiveAvgPool2d(3)).eval()
    with pytest.raises(CheckFailedError) as info:
        cbam_deploy.export(model, [(1, 3, 32, 32)], out=tmp_path, name="pool", dynamic="all")
    message = str(info.value)
    assert "\n" not in message
    assert "pool (AdaptiveAvgPool2d(output_size=3)" in message and "does not divide the traced height 32" in message
    assert not any(tmp_path.iterdir())  # nothing half-written


def test_functional_adaptive_pooling_rewritten_when_fx_traces():
    class Functional(nn.Module):
        def forward(self, x):
            return x * F.adaptive_avg_pool2d(x, (None, 1)) + F.adaptive_max_pool2d(x, (1, None))

    model = Functional().eval()
    rewritten, names = globalize_pooling(model)
    assert len(names) == 2
    x = torch.randn(2, 3, 10, 6)
    torch.testing.assert_close(rewritten(x), model(x))


def test_max_with_keepdim_exports_without_argmax(tmp_path):
    class ChannelMax(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)

        def forward(self, x):
            y = self.conv(x)
            peak, _ = torch.max(y, 1, keepdim=True)
            return y * torch.sigmoid(peak)

    report = cbam_deploy.export(ChannelMax().eval(), [(1, 3, 16, 16)], out=tmp_path, name="max", dynamic="all")
    assert report.passed, report.parity.failures()
    import onnx

    ops = {n.op_type for n in onnx.load(str(report.onnx_path)).graph.node}
    assert "ReduceMax" in ops and "ArgMax" not in ops


def test_block_sizes_need_an_example_input_and_say_so():
    model, left = Pooled(nn.AdaptiveMaxPool2d((2, 2))).eval(), []
    assert globalize_pooling(model, left=left) == (model, [])
    assert left == ["pool (AdaptiveMaxPool2d(output_size=(2, 2)): no example input to check that its output size "
                    "divides the map)"]
